// A balancer's life: listen errors, drain on close, process exit, idle timeout, and running
// out of file descriptors.

import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { Lb4Error, startBalancer } from '../../lib/index.js';
import { startChildBalancer } from '../helpers/child-balancer.js';
import { connect, echoBackend, readAll, until, within } from '../helpers/sockets.js';

t.test('listen failures are Node-style errors and leave nothing open', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());

  await t.test('port held by another program', async (t) => {
    const other = net.createServer().listen(0, '127.0.0.1');
    await once(other, 'listening');
    t.teardown(() => other.close());
    const port = (other.address() as net.AddressInfo).port;
    const err = await startBalancer({ listen: `127.0.0.1:${port}`, backends: [backend.address], workers: 2 }).then(
      () => null,
      (e: NodeJS.ErrnoException & { address?: string; port?: number }) => e,
    );
    t.ok(err, 'start rejects');
    t.equal(err!.code, 'EADDRINUSE');
    t.equal(err!.syscall, 'bind');
    t.equal(err!.address, '127.0.0.1');
    t.equal(err!.port, port);
    t.match(err!.message, /cannot listen on 127\.0\.0\.1:\d+: bind EADDRINUSE .*address already in use/);
  });

  await t.test('port held by another lb4 (reuseport would have hidden it)', async (t) => {
    const first = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 2 });
    t.teardown(() => first.close({ drainTimeout: 0 }));
    await t.rejects(startBalancer({ listen: `127.0.0.1:${first.address().port}`, backends: [backend.address] }), { code: 'EADDRINUSE' });
  });

  await t.test('a later listener fails: the earlier ones are closed again', async (t) => {
    const other = net.createServer().listen(0, '127.0.0.1');
    await once(other, 'listening');
    t.teardown(() => other.close());
    const taken = (other.address() as net.AddressInfo).port;
    const free = net.createServer().listen(0, '127.0.0.1');
    await once(free, 'listening');
    const freePort = (free.address() as net.AddressInfo).port;
    await new Promise((r) => free.close(r));
    await t.rejects(startBalancer({ listen: [`127.0.0.1:${freePort}`, `127.0.0.1:${taken}`], backends: [backend.address] }), { code: 'EADDRINUSE' });
    // The first listener's port must be free again.
    const probe = net.createServer().listen(freePort, '127.0.0.1');
    await once(probe, 'listening');
    await new Promise((r) => probe.close(r));
    t.pass('the first listener was not left open');
  });

  await t.test('address not on this host', async (t) => {
    // 192.0.2.0/24 is reserved for documentation: never configured here, and nothing is sent.
    await t.rejects(startBalancer({ listen: '192.0.2.1:0', backends: [backend.address] }), { code: 'EADDRNOTAVAIL', syscall: 'bind' });
  });
});

t.test('bad options are rejected with the field named', async (t) => {
  const cases: [object, string, RegExp][] = [
    [{ listen: 'nonsense', backends: ['127.0.0.1:1'] }, 'LB4_INVALID_ADDRESS', /^listen: "nonsense" has no port/],
    [{ listen: ':70000', backends: ['127.0.0.1:1'] }, 'LB4_INVALID_ADDRESS', /port 70000 is out of range/],
    [{ listen: ':0', backends: [] }, 'LB4_NO_BACKEND', /^backends: at least one backend/],
    [{ listen: ':0' }, 'LB4_NO_BACKEND', /at least one backend/],
    [{ listen: ':0', backends: ['127.0.0.1'] }, 'LB4_INVALID_ADDRESS', /^backends\[0\]\.address: "127\.0\.0\.1" has no port/],
    [{ listen: ':0', backends: ['127.0.0.1:0'] }, 'LB4_INVALID_ADDRESS', /port 0 is out of range/],
    [{ listen: ':0', backends: ['999.1.1.1:80'] }, 'LB4_INVALID_ADDRESS', /not a valid IPv4 address/],
    [{ listen: ':0', backends: ['::1:80'] }, 'LB4_INVALID_ADDRESS', /IPv6 addresses in brackets/],
    [{ listen: ':0', backends: ['nosuchhost.invalid:80'] }, 'LB4_UNRESOLVABLE_HOST', /^backends\[0\]\.address: cannot resolve host "nosuchhost\.invalid"/],
    [{ listen: ':0', backends: ['127.0.0.1:1,weight=x'] }, 'LB4_INVALID_OPTION', /weight must be a whole number/],
    [{ listen: ':0', backends: ['127.0.0.1:1,colour=red'] }, 'LB4_INVALID_OPTION', /unknown backend parameter "colour"/],
    [{ listen: ':0', backends: ['127.0.0.1:1', '127.0.0.1:1'] }, 'LB4_DUPLICATE_BACKEND', /listed twice/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], algorithm: 'random' }, 'LB4_INVALID_OPTION', /^algorithm: must be one of roundrobin, leastconn, maglev/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], workers: 0 }, 'LB4_INVALID_OPTION', /^workers: must be between 1 and 255/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], retries: 1.5 }, 'LB4_INVALID_OPTION', /^retries: must be a whole number/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], connectTimeout: 'soon' }, 'LB4_INVALID_DURATION', /^connectTimeout: "soon" is not a duration/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], idleTimeout: '0ms' }, 'LB4_INVALID_OPTION', /^idleTimeout: must be between 1ms/],
    [{ listen: ':0', backends: ['127.0.0.1:1'], colour: 'red' }, 'LB4_INVALID_OPTION', /^colour: unknown option/],
  ];
  for (const [options, code, message] of cases) {
    const err = await startBalancer(options as never).then(() => null, (e: Lb4Error) => e);
    t.ok(err instanceof Lb4Error, `${JSON.stringify(options)} is rejected`);
    t.equal(err?.code, code, `code ${code}`);
    t.match(err?.message, message, 'message names the field and the problem');
  }
});

t.test('close drains: no new flows, open flows finish, then it resolves', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 2 });
  const port = lb.address().port;
  const open = await connect(port);
  open.write('before');
  await within(once(open, 'data'), 5000, 'echo');
  let closed = false;
  const closing = lb.close({ drainTimeout: '20s' });
  void closing.then(() => (closed = true));
  t.equal(lb.close(), closing, 'close is idempotent: the same promise');
  const refused = await new Promise<string | undefined>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    s.on('connect', () => resolve('connected'));
  });
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while draining');
  t.notOk(closed, 'close waits for the open flow');
  const reading = readAll(open);
  open.end('during drain');
  t.equal(String((await reading).data), 'during drain', 'the open flow still forwards and ends normally');
  await within(closing, 10_000, 'close to resolve once the flow ended');
  t.equal(lb.stats().listeners[0].counters.drain_closed, 0, 'nothing had to be cut');
  await t.rejects(lb.addBackend('127.0.0.1:1'), { code: 'LB4_CLOSED' });
});

t.test('the drain timeout closes flows that do not finish', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, drainTimeout: '200ms' });
  const open = await connect(lb.address().port);
  open.write('x');
  await within(once(open, 'data'), 5000, 'echo');
  const outcome = readAll(open);
  await within(lb.close(), 10_000, 'close with the configured drain timeout');
  const { error } = await outcome;
  t.equal(error?.code, 'ECONNRESET', 'the lingering client is reset');
  t.equal(lb.stats().listeners[0].counters.drain_closed, 1);
});

t.test('an idle flow is closed after the idle timeout; a slow but live one is not', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, idleTimeout: '300ms' });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const idle = await connect(lb.address().port);
  const live = await connect(lb.address().port);
  const idleOutcome = readAll(idle, 10_000);
  let liveClosed = false;
  live.on('close', () => (liveClosed = true));
  live.on('data', () => {});
  // Keep `live` busy with a byte every 100 ms while `idle` sits silent.
  const ticker = setInterval(() => live.write('.'), 100);
  t.teardown(() => clearInterval(ticker));
  await idleOutcome;
  t.equal(lb.stats().listeners[0].counters.idle_timeouts, 1, 'the idle flow was closed by the timeout');
  t.notOk(liveClosed, 'the live flow is still open');
  clearInterval(ticker);
  live.destroy();
});

t.test('the process stays up while listening and exits by itself after close', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const child = await startChildBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 2 });
  t.teardown(() => child.kill());
  // Still up with nothing to do: a flow goes through after the start.
  const s = await connect(child.port);
  const reading = readAll(s);
  s.end('alive');
  t.equal(String((await reading).data), 'alive');
  child.send('close 1000');
  t.same(await child.next(), { closed: true });
  const [code, signal] = await within(child.exited, 10_000, 'the child to exit by itself');
  t.equal(code, 0, 'exit code 0');
  t.equal(signal, null);
});

t.test('out of file descriptors: connections are shed, not spun on, and service resumes', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  const limit = 96;
  const child = await startChildBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 }, limit);
  t.teardown(() => child.kill());
  // Each flow costs the child two descriptors; ask for many more than are left.
  const flood = Math.ceil((limit - child.fdsAtStart) / 2) + 40;
  const clients: net.Socket[] = [];
  const outcomes: Promise<{ data: Buffer; error?: NodeJS.ErrnoException }>[] = [];
  for (let i = 0; i < flood; i++) {
    const s = net.connect(child.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => s.write('x'));
    clients.push(s);
    outcomes.push(readAll(s, 20_000));
  }
  t.teardown(() => clients.forEach((c) => c.destroy()));
  // Some flows are served and stay open (echo); the rest must be closed promptly, not hang.
  await until(async () => {
    child.send('stats');
    const { stats } = (await child.next()) as { stats: Record<string, number> };
    return stats.accept_shed + stats.no_backend > 0 && stats.flows_total >= 1;
  }, 20_000, 'the child to shed load');
  child.send('stats');
  const before = (await child.next()) as { stats: Record<string, number>; cpu: { user: number; system: number } };
  // Hold the overload for a while: a spinning accept loop would burn a core meanwhile.
  await new Promise((r) => setTimeout(r, 1000));
  child.send('stats');
  const after = (await child.next()) as { stats: Record<string, number>; cpu: { user: number; system: number } };
  const cpuMs = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1000;
  t.ok(cpuMs < 500, `no busy loop while out of descriptors (${cpuMs.toFixed(0)} ms of CPU in ~1 s)`);
  t.ok(after.stats.accept_shed + after.stats.no_backend > 0, `shed ${after.stats.accept_shed}, closed for lack of descriptors ${after.stats.no_backend}`);
  // Free every descriptor, then the child must serve again.
  clients.forEach((c) => c.destroy());
  await Promise.all(outcomes);
  await until(async () => {
    child.send('stats');
    const { stats } = (await child.next()) as { stats: Record<string, number> };
    return stats.flows_active === 0;
  }, 20_000, 'the child to see every flow closed');
  const s = await connect(child.port);
  const reading = readAll(s);
  s.end('served again');
  t.equal(String((await reading).data), 'served again', 'service resumes once descriptors are free');
  child.send('fds');
  const { fds } = (await child.next()) as { fds: number };
  t.ok(fds <= child.fdsAtStart + 2, `no descriptor leaked (${fds} open now, ${child.fdsAtStart} at start)`);
  child.send('close 0');
  await child.next();
  t.equal((await within(child.exited, 10_000, 'exit'))[0], 0);
});
