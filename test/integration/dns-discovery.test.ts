// DNS discovery against a real DNS server: NSD on 127.0.0.1 serves a zone the test rewrites.
// A `dns:` entry follows the A records (an address added, one removed and drained, the one that
// stays keeps its open flow), an `srv:` entry takes the lowest priority's ports and weights, a
// dead server keeps the last good set (counted in /metrics), and reloads leave an entry's
// backends to the entry. NSD is Debian's `nsd` (.ci/run installs it); off CI, without it, the
// tests are skipped.

import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { startBalancer, type Balancer, type BalancerEvents, type BalancerOptions } from '../../lib/index.js';
import { nsdInstalled, startNsd, type Nsd } from '../helpers/nsd.js';
import { connect, nameBackend, readAll, whoAnswers, within, type TestBackend } from '../helpers/sockets.js';

const zone = 'lb4-dnsdisc.test';
const skip = !nsdInstalled && !process.env.CI ? 'nsd is not installed' : false;

/** A TCP server on `host:port` answering `name` (port 0: any), or echoing when `name` is null. */
async function backendOn(host: string, port: number, name: string | null): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (name === null) s.pipe(s);
    else s.end(`${name}\n`);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The next 'dns-resolution' event of `entry` that `match` accepts. */
function nextResolution(lb: Balancer, entry: string, match: (info: BalancerEvents['dns-resolution'][0]) => boolean, what: string) {
  return within(
    new Promise<BalancerEvents['dns-resolution'][0]>((resolve) => {
      const on = (info: BalancerEvents['dns-resolution'][0]) => {
        if (info.entry !== entry || !match(info)) return;
        lb.off('dns-resolution', on);
        resolve(info);
      };
      lb.on('dns-resolution', on);
    }),
    15_000,
    what,
  );
}

async function nsdFor(t: Test, records: string[]): Promise<Nsd> {
  const nsd = await startNsd(zone, records);
  t.teardown(() => nsd.close());
  return nsd;
}

// Short intervals so a zone change shows within a fraction of a second; the records' TTL is 1 s.
const timing = { dnsInterval: '300ms', dnsMinInterval: '50ms', dnsTimeout: '200ms' };

t.test('dns: entry: A records added and removed, the kept address untouched, a dead server keeps the last set', { skip }, async (t) => {
  const two = await backendOn('127.0.0.2', 0, null);
  const three = await backendOn('127.0.0.3', two.port, 'three');
  t.teardown(() => Promise.all([two.close(), three.close()]));
  const nsd = await nsdFor(t, ['app IN A 127.0.0.2']);
  const entry = `dns:app.${zone}:${two.port}`;
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [entry], dnsServers: [nsd.server], workers: 1, admin: { listen: '127.0.0.1:0' }, ...timing });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const port = lb.address().port;

  // The first answer is in before startBalancer resolves.
  t.same(lb.backends().map((b) => [b.id, b.ip, b.port, b.entry]), [[`${entry}/127.0.0.2:${two.port}`, '127.0.0.2', two.port, entry]], 'started with the A record');
  const held = await connect(port);
  held.write('before');
  const [echoed] = await within(once(held, 'data'), 5000, 'the echo through 127.0.0.2');
  t.equal(String(echoed), 'before');

  // A second address appears: added; the first keeps its record and its open flow.
  let seen = nextResolution(lb, entry, (i) => i.added.length > 0, 'the second address');
  await nsd.setRecords(['app IN A 127.0.0.2', 'app IN A 127.0.0.3']);
  let info = await seen;
  t.same(info.added, [`${entry}/127.0.0.3:${two.port}`]);
  t.same(info.removed, []);
  t.same(lb.backends().map((b) => b.ip).sort(), ['127.0.0.2', '127.0.0.3']);
  held.write('still');
  const [again] = await within(once(held, 'data'), 5000, 'the open flow after the change');
  t.equal(String(again), 'still', 'the flow on the kept address goes on');

  // The first address goes: removed (drained), new flows go to the one left.
  seen = nextResolution(lb, entry, (i) => i.removed.length > 0, 'the first address to go');
  await nsd.setRecords(['app IN A 127.0.0.3']);
  info = await seen;
  t.same(info.removed, [`${entry}/127.0.0.2:${two.port}`]);
  t.same(lb.backends().map((b) => b.ip), ['127.0.0.3']);
  t.equal(await whoAnswers(port), 'three');
  held.destroy();

  // The server dies: failures are counted and logged, the backends stay.
  seen = nextResolution(lb, entry, (i) => i.result === 'error', 'a failed resolution');
  await nsd.stop();
  info = await seen;
  t.match(info.error, /ETIMEOUT|ECONNREFUSED|ESERVFAIL|ECANCELLED/, 'the reason names the failure');
  t.same(info.backends, [`${entry}/127.0.0.3:${two.port}`], 'the last good set stays');
  t.equal(await whoAnswers(port), 'three');
  const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
  const count = (result: string) => Number(new RegExp(`^lb4_dns_resolutions_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  t.ok(count('ok') >= 3, `ok resolutions counted (${count('ok')})`);
  t.ok(count('error') >= 1, `failed resolutions counted (${count('error')})`);
  t.ok((lb.stats().dnsResolutions?.error ?? 0) >= 1, 'stats() counts them too');

  // Back with another answer: the set follows again.
  // (127.0.0.3 is held for one more answer after the first that lacks it.)
  seen = nextResolution(lb, entry, (i) => i.result === 'ok' && i.removed.length > 0, 'the server to be back');
  await nsd.start();
  await nsd.setRecords(['app IN A 127.0.0.2']);
  info = await seen;
  t.same(info.removed, [`${entry}/127.0.0.3:${two.port}`]);
  t.same(lb.backends().map((b) => b.ip), ['127.0.0.2']);
});

t.test('dns: entry: an empty answer keeps the last set', { skip }, async (t) => {
  const backend = await nameBackend('only');
  t.teardown(() => backend.close());
  const nsd = await nsdFor(t, ['app IN A 127.0.0.1']);
  const entry = `dns:app.${zone}:${backend.port}`;
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [entry], dnsServers: [nsd.server], workers: 1, ...timing });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const seen = nextResolution(lb, entry, (i) => i.result === 'empty', 'an empty answer');
  await nsd.setRecords(['other IN A 127.0.0.1']);
  const info = await seen;
  t.match(info.error, /no addresses/);
  t.same(lb.backends().map((b) => b.port), [backend.port], 'NXDOMAIN removes nothing');
  t.equal(await whoAnswers(lb.address().port), 'only');
});

t.test('srv: entry: lowest priority, ports and weights from the records; reloads leave its backends to it', { skip }, async (t) => {
  const started: TestBackend[] = await Promise.all(['b1', 'b2', 'b3', 'static'].map((n) => nameBackend(n)));
  t.teardown(() => Promise.all(started.map((b) => b.close())));
  const [b1, b2, b3, fixed] = started;
  const srv = (p1: number, w1: number) => [
    `_app._tcp IN SRV 10 ${w1} ${p1} one`,
    `_app._tcp IN SRV 10 1 ${b2.port} two`,
    `_app._tcp IN SRV 20 5 ${b3.port} three`,
    'one IN A 127.0.0.1',
    'two IN A 127.0.0.1',
    'three IN A 127.0.0.1',
  ];
  const nsd = await nsdFor(t, srv(b1.port, 3));
  const entry = `srv:_app._tcp.${zone}`;
  const options = (backends: BalancerOptions['backends']): BalancerOptions => ({
    listeners: [{ name: 'web', listen: '127.0.0.1:0', backends }],
    dnsServers: [nsd.server],
    workers: 1,
    ...timing,
  });
  const lb = await startBalancer(options([fixed.address, entry]));
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const weights = () => Object.fromEntries(lb.backends().map((b) => [b.id, b.weight]));
  t.same(weights(), { [fixed.address]: 1, [`${entry}/127.0.0.1:${b1.port}`]: 3, [`${entry}/127.0.0.1:${b2.port}`]: 1 }, 'priority 10 only, with its weights');

  // A reload of the same file changes nothing: the discovered backends belong to the entry.
  let summary = await lb.reload(options([fixed.address, entry]));
  t.same([summary.backendsAdded, summary.backendsRemoved, summary.backendsChanged], [[], [], []]);
  t.equal(lb.backends().length, 3, 'the entry kept its backends');

  // A new weight in DNS: changed in place.
  const seen = nextResolution(lb, entry, () => weights()[`${entry}/127.0.0.1:${b1.port}`] === 7, 'the new SRV weight');
  await nsd.setRecords(srv(b1.port, 7));
  await seen;
  t.equal(lb.backends().length, 3);

  // The file drops the entry: its backends go; the static one stays.
  summary = await lb.reload(options([fixed.address]));
  t.same(lb.backends().map((b) => b.id), [fixed.address]);
  t.same(summary.backendsRemoved, [], 'the file list itself did not change');
  t.equal(await whoAnswers(lb.address().port), 'static');

  // And brings it back: resolved before the reload answers.
  await lb.reload(options([entry]));
  t.same(Object.keys(weights()).sort(), [`${entry}/127.0.0.1:${b1.port}`, `${entry}/127.0.0.1:${b2.port}`].sort());
  const answers = new Set<string>();
  for (let i = 0; i < 16; i++) answers.add(await whoAnswers(lb.address().port));
  t.notOk(answers.has('b3'), 'the higher priority record takes no flows');
  t.ok(answers.has('b1'), 'the SRV targets take flows');
});

t.test('dns entries are checked without a query, and only in a config', async (t) => {
  const { validateOptions } = await import('../../lib/config/validate.js');
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['dns:app.example.internal:80,weight=2,id=app', { srv: '_x._tcp.example.internal' }] });
  t.same(config.listeners[0].discover.map((e) => [e.kind, e.id, e.name, e.port, e.weight]), [
    ['dns', 'app', 'app.example.internal', 80, 2],
    ['srv', 'srv:_x._tcp.example.internal', '_x._tcp.example.internal', 0, 1],
  ]);
  t.same(config.listeners[0].backends, []);
  const bad: Array<[unknown, string]> = [
    ['dns:app.example.internal', 'backends[0]'],
    [{ dns: 'app.example.internal' }, 'backends[0].port'],
    [{ srv: '_x._tcp.example.internal', port: 80 }, 'backends[0].port'],
    ['srv:_x._tcp.example.internal,weight=3', 'backends[0]'],
    [{ dns: '10.0.0.1', port: 80 }, 'backends[0].dns'],
    [{ dns: 'a', srv: 'b', port: 80 }, 'backends[0].srv'],
  ];
  for (const [entry, field] of bad) await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [entry as string] }), { field, message: /./ }, JSON.stringify(entry));
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], dnsServers: ['ns.example.internal'] }), { field: 'dnsServers', code: 'LB4_INVALID_ADDRESS' });
  t.same((await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], dnsServers: ['127.0.0.53', '[::1]:5353'] })).dnsServers, ['127.0.0.53:53', '[::1]:5353']);
});

t.test('a reload that renames a dns: entry while DNS is silent keeps its backends until the new one answers', { skip }, async (t) => {
  const echo = await backendOn('127.0.0.2', 0, null);
  t.teardown(() => echo.close());
  const nsd = await nsdFor(t, ['app IN A 127.0.0.2']);
  const before = `dns:app.${zone}:${echo.port}`;
  const options = (entry: string): BalancerOptions => ({ listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: [entry] }], dnsServers: [nsd.server], workers: 1, drainTimeout: '200ms', ...timing });
  const lb = await startBalancer(options(before));
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const port = lb.address().port;
  const held = await connect(port);
  held.write('one');
  t.equal(String((await within(once(held, 'data'), 5000, 'the first echo'))[0]), 'one');

  // DNS goes silent, and the reload gives the entry an id: the old entry's backend serves on.
  await nsd.stop();
  const summary = await lb.reload(options(`${before},id=app`));
  t.same(summary.dnsEntries, { added: [], removed: [], renamed: [`web/${before} -> web/app`], changed: [] }, 'the summary names the rename');
  t.same(lb.backends().map((b) => [b.id, b.takesNewFlows]), [[`${before}/127.0.0.2:${echo.port}`, true]], 'the old backend stays until the new entry answers');
  const other = await connect(port);
  other.write('new flow');
  t.equal(String((await within(once(other, 'data'), 5000, 'a new flow while DNS is silent'))[0]), 'new flow');
  other.destroy();
  // Renamed back and forth again before any answer: the same backend serves on.
  t.same((await lb.reload(options(before))).dnsEntries?.renamed, [`web/app -> web/${before}`]);
  t.same((await lb.reload(options(`${before},id=app`))).dnsEntries, { added: [], removed: [], renamed: [`web/${before} -> web/app`], changed: [] });
  t.same(lb.backends().map((b) => b.id), [`${before}/127.0.0.2:${echo.port}`], 'still the old backend');

  // The new entry's first answer takes the same address over: same engine key, the open flow goes on.
  const seen = nextResolution(lb, 'app', (i) => i.result === 'ok', 'the renamed entry to answer');
  await nsd.start();
  await seen;
  t.same(lb.backends().map((b) => [b.id, b.entry]), [[`app/127.0.0.2:${echo.port}`, 'app']]);
  t.same((await lb.connections({ listener: 'web' })).map((c) => c.backend), [`app/127.0.0.2:${echo.port}`], 'the open flow runs on the taken-over record');
  // Well past the 200 ms drain timeout (each resolution waits at least 300 ms): no drain cut the flow.
  for (let i = 0; i < 2; i++) await nextResolution(lb, 'app', (r) => r.result === 'ok', 'later resolutions');
  held.write('two');
  t.equal(String((await within(once(held, 'data'), 5000, 'the echo after the takeover'))[0]), 'two');
  held.destroy();

  // A rename to another port (a real change of backends): the old one drains only once the new answers.
  const second = await backendOn('127.0.0.2', 0, 'second');
  t.teardown(() => second.close());
  const moved = await lb.reload(options(`dns:app.${zone}:${second.port}`));
  t.same(moved.dnsEntries?.renamed, [`web/app -> web/dns:app.${zone}:${second.port}`]);
  t.same(lb.backends().map((b) => b.port), [second.port], 'the new answer replaced the old port');
  t.equal(await whoAnswers(port), 'second');

  // Removed with nothing in its place: the backends go at once, as before.
  const gone = await lb.reload({ ...options(`dns:app.${zone}:${second.port}`), listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] }] });
  t.same(gone.dnsEntries?.removed, [`web/dns:app.${zone}:${second.port}`]);
  t.same(lb.backends().map((b) => b.id), ['127.0.0.1:9']);
});

t.test('an address that leaves the answers and comes back gets its record back: held one answer, then drained, the drain cancelled on return, state kept', { skip }, async (t) => {
  const echo = await backendOn('127.0.0.2', 0, null);
  const three = await backendOn('127.0.0.3', echo.port, 'three');
  t.teardown(() => Promise.all([echo.close(), three.close()]));
  const nsd = await nsdFor(t, ['app IN A 127.0.0.2', 'app IN A 127.0.0.3']);
  const entry = `dns:app.${zone}:${echo.port}`;
  // The drain timeout is long enough for the address to come back before it ends.
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [entry], dnsServers: [nsd.server], workers: 1, drainTimeout: '3s', ...timing });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const [two, threeId] = [`${entry}/127.0.0.2:${echo.port}`, `${entry}/127.0.0.3:${echo.port}`];
  // The operator takes 127.0.0.3 out: new flows go to 127.0.0.2.
  await lb.setBackendState(threeId, 'maintenance');
  const held = await connect(lb.address().port);
  held.write('one');
  t.equal(String((await within(once(held, 'data'), 5000, 'the first echo'))[0]), 'one');

  // One answer without them holds them (a server answering with a subset must not drain them)...
  const four = `${entry}/127.0.0.4:${echo.port}`;
  let seen = nextResolution(lb, entry, (i) => i.added.includes(four), 'the first answer without them');
  const gone = nextResolution(lb, entry, (i) => i.removed.length === 2, 'both addresses to leave');
  await nsd.setRecords(['app IN A 127.0.0.4']);
  const first = await seen;
  t.same([first.removed, first.backends.sort()], [[], [two, threeId, four].sort()], 'held for one more answer');
  // ...the next one without them too drains them.
  await gone;
  seen = nextResolution(lb, entry, (i) => i.added.includes(two), 'both addresses to come back');
  const fourGone = nextResolution(lb, entry, (i) => i.removed.includes(four), '127.0.0.4 to leave');
  await nsd.setRecords(['app IN A 127.0.0.2', 'app IN A 127.0.0.3']);
  await seen;
  await fourGone;
  t.same(Object.fromEntries(lb.backends().map((b) => [b.id, b.state])), { [two]: 'up', [threeId]: 'maintenance' }, "the operator's state came back with the address");
  t.same((await lb.connections()).map((c) => c.backend), [two], 'the open flow is on the record that came back');
  // Past the end of the drain begun when the address left (each resolution waits at least 300 ms):
  // the drain was cancelled, the flow still runs.
  for (let i = 0; i < 11; i++) await nextResolution(lb, entry, (r) => r.result === 'ok', 'later resolutions');
  held.write('two');
  t.equal(String((await within(once(held, 'data'), 5000, 'the echo after the return'))[0]), 'two');
  held.destroy();
});

t.test("a discovered backend's weight is its entry's: the API refuses to change it, a reload sets it at once", { skip }, async (t) => {
  const backend = await nameBackend('only');
  t.teardown(() => backend.close());
  const nsd = await nsdFor(t, ['app IN A 127.0.0.1']);
  const options = (weight: number): BalancerOptions => ({ listen: '127.0.0.1:0', backends: [`dns:app.${zone}:${backend.port},id=app,weight=${weight}`], dnsServers: [nsd.server], workers: 1, admin: { listen: '127.0.0.1:0' }, ...timing });
  const lb = await startBalancer(options(2));
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const id = `app/127.0.0.1:${backend.port}`;
  const put = await fetch(`${lb.adminUrl}/backends/${encodeURIComponent(id)}/weight`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weight: 9 }) });
  t.equal(put.status, 409, 'the admin API refuses');
  t.match(await put.json(), { error: { code: 'LB4_DNS_OWNED', field: 'weight', message: /DNS entry "app"/ } });
  await t.rejects(lb.setBackendWeight(id, 9), { code: 'LB4_DNS_OWNED' });
  t.same(lb.backends().map((b) => b.weight), [2]);

  // DNS silent: a reload's new entry weight applies to the backends found, at once.
  await nsd.stop();
  const summary = await lb.reload(options(5));
  t.same(summary.dnsEntries?.changed, ['127.0.0.1:0/app']);
  t.same(lb.backends().map((b) => [b.id, b.weight]), [[id, 5]]);

  // And an id a DNS entry gives its backends cannot be taken through the API.
  await t.rejects(lb.addBackend({ id: 'app/127.0.0.9:80', address: '127.0.0.9:80' }), { code: 'LB4_DNS_OWNED', field: 'id' });
  const post = await fetch(`${lb.adminUrl}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'app/127.0.0.9:80', address: '127.0.0.9:80' }) });
  t.equal(post.status, 409);
});

t.test("a file's backend with the id a DNS answer would give: the answer's backend is skipped, and said once", { skip }, async (t) => {
  const backend = await nameBackend('fixed');
  t.teardown(() => backend.close());
  const nsd = await nsdFor(t, ['app IN A 127.0.0.1']);
  const lines: Array<{ msg: string }> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const id = `app/127.0.0.1:${backend.port}`;
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ id, address: backend.address }, `dns:app.${zone}:${backend.port},id=app`], dnsServers: [nsd.server], workers: 1, ...timing }, { logger: pino({ level: 'info' }, stream) });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  for (let i = 0; i < 3; i++) await nextResolution(lb, 'app', (r) => r.result === 'ok', 'resolutions');
  t.same(lb.backends().map((b) => [b.id, b.entry]), [[id, undefined]], "the file's backend stays; the answer's is skipped");
  t.equal(lines.filter((l) => l.msg === 'DNS backend skipped: a backend of that id exists').length, 1, 'logged once, not at every answer');
});
