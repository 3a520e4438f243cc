// Reload as reconciliation through `lb4 start --config`, as an operator meets it: a backend added
// through the admin API, then `POST /reload` and SIGHUP; a reload whose new listener cannot bind;
// reloads repeated. The admin API and the balancer are real sockets on 127.0.0.1.

import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { call } from '../helpers/admin-http.js';
import { buildDist, killChildren, startCli, type Cli } from '../helpers/cli.js';
import { integrityBackend, integrityExchange } from '../helpers/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-reliab-reconcile-'));
t.before(buildDist);
t.teardown(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

const path = join(dir, 'lb4.json');

function writeFile(listeners: unknown[]): void {
  writeFileSync(path, JSON.stringify({ admin: '127.0.0.1:0', drainTimeout: '1s', listeners }));
}

t.test('the file wins over the admin API, a reload that cannot bind changes nothing, reloads repeat idempotently', async (t) => {
  const backend = await integrityBackend();
  t.teardown(() => backend.close());
  const web = { name: 'web', listen: '127.0.0.1:0', backends: [backend.address, { address: '127.0.0.1:9', id: 'spare', weight: 0 }] };
  writeFile([web]);
  const { cli, portOf } = await startCli(['--config', path]);
  t.teardown(() => cli.signal('SIGKILL'));
  const url = new URL((await cli.waitForLog('admin API listening')).url as string);
  const admin = { port: Number(url.port) };
  const ids = async () => ((await call(admin, 'GET', '/backends')).json as { id: string; weight: number }[]).map((b) => `${b.id}*${b.weight}`).sort();
  const fileIds = await ids();

  // Changes at run time through the admin API.
  t.equal((await call(admin, 'POST', '/backends?listener=web', { body: { address: '127.0.0.1:10', id: 'extra' } })).status, 201, 'a backend added through the API');
  t.equal((await call(admin, 'PUT', '/backends/spare/weight', { body: { weight: 4 } })).status, 200, 'a weight changed through the API');
  // Its log line may reach this process after the HTTP answer: read it before the mark, or it
  // would count as the fence below, ahead of the reload's line.
  await cli.waitForLog('backend weight changed');

  let mark = cli.mark();
  const reloaded = await call(admin, 'POST', '/reload');
  t.equal(reloaded.status, 200, `POST /reload answers 200: ${reloaded.text}`);
  t.same(reloaded.json.backendsRemoved, ['web/extra']);
  t.same(reloaded.json.backendsChanged, ['web/spare']);
  t.same(await ids(), fileIds, 'the running backends equal the file');
  t.equal(await countReloadLines(cli, admin, mark), 1, 'one log line for the reload');

  // A new listener on a port another socket holds: nothing changes.
  const holder = net.createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  await call(admin, 'POST', '/backends?listener=web', { body: { address: '127.0.0.1:11', id: 'extra2' } });
  const withExtra = await ids();
  writeFile([web, { name: 'blocked', listen: `127.0.0.1:${taken}`, backends: [backend.address] }]);
  mark = cli.mark();
  cli.signal('SIGHUP');
  const rejected = await cli.waitForLog('reload rejected: the running config keeps serving', { after: mark });
  t.match(rejected.err, new RegExp(`cannot listen on blocked: bind EADDRINUSE 127\\.0\\.0\\.1:${taken}`), `the SIGHUP reload's error is logged: ${rejected.err}`);
  t.equal(await countReloadLines(cli, admin, mark), 1, 'in one line');
  mark = cli.mark();
  const answered = await call(admin, 'POST', '/reload');
  t.equal(answered.status, 409, 'POST /reload answers the error');
  t.equal(answered.json.error.code, 'EADDRINUSE');
  t.equal(await countReloadLines(cli, admin, mark), 1, 'one log line for that reload too');
  t.same(await ids(), withExtra, 'nothing changed: the API-added backend is still there');
  t.same(((await call(admin, 'GET', '/listeners')).json as { name: string }[]).map((l) => l.name), ['web']);
  await integrityExchange(portOf.web, 1000, 1000, 10_000);
  t.pass('web still serves');

  // The file fixed: SIGHUP twice; the first converges, the second changes nothing.
  writeFile([web]);
  mark = cli.mark();
  cli.signal('SIGHUP');
  const first = await cli.waitForLog('reload applied', { after: mark });
  t.same(first.backendsRemoved, ['web/extra2']);
  mark = cli.mark();
  cli.signal('SIGHUP');
  const second = await cli.waitForLog('reload applied', { after: mark });
  t.same([second.listenersAdded, second.listenersRemoved, second.backendsAdded, second.backendsRemoved, second.backendsChanged], [[], [], [], [], []], 'a second reload of the same file changes nothing');
  t.same(await ids(), fileIds);
  t.equal(cli.logs('SIGHUP: reloading').length, 0, 'a SIGHUP adds no line of its own');
});

/**
 * How many lines the reload component logged after `mark`. A fence (a weight set again, which
 * logs a line of its own) comes after everything the reload wrote, since lb4 writes its log in order.
 */
async function countReloadLines(cli: Cli, admin: { port: number }, mark: number): Promise<number> {
  t.equal((await call(admin, 'PUT', '/backends/spare/weight', { body: { weight: 0 } })).status, 200);
  await cli.waitForLog('backend weight changed', { after: mark });
  const lines = cli.logsAfter(mark);
  const fence = lines.findIndex((l) => l.msg === 'backend weight changed');
  return lines.slice(0, fence).filter((l) => l.component === 'reload').length;
}
