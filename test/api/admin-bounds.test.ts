// A bounded admin port (issue 11): a connection limit, header and idle timeouts, 431 for oversized
// request lines and headers, 400 for out-of-range query values without a stack in the log, the
// token requirement decided from the resolved address, an accurate error for a unix socket in a
// missing directory. Real sockets on 127.0.0.1, against `lb4 start` in a child process.

import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { adminConnectionLimit, openFileLimit } from '../../lib/api/descriptor-limit.js';
import { validateOptions } from '../../lib/config/validate.js';
import { call } from '../helpers/admin-http.js';
import { buildDist, killChildren, onlyLine, runCli, startCli, type Cli } from '../helpers/cli.js';
import { integrityBackend, integrityExchange, within } from '../helpers/sockets.js';

t.before(buildDist);
t.teardown(killChildren);

const descriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Sends `head` on a new connection and resolves with the status line of the answer ('' if closed without one). */
function rawStatus(port: number, head: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(text.split('\r\n')[0]));
    // Written once connected; a server that answers before all of it is read may reset the rest.
    socket.on('connect', () => socket.write(head));
  });
  return within(answer, 10_000, 'an answer from the admin port');
}

async function startWithAdmin(t: Test, extra: string[], fdLimit?: number): Promise<{ cli: Cli; web: number; admin: number }> {
  const backend = await integrityBackend();
  t.teardown(() => backend.close());
  const { cli, portOf } = await startCli(['--listen', '127.0.0.1:0', '--backend', backend.address, '--workers', '1', '--admin', '0', ...extra], { fdLimit });
  t.teardown(() => cli.signal('SIGKILL'));
  const url = new URL((await cli.waitForLog('admin API listening')).url as string);
  return { cli, web: Object.values(portOf)[0], admin: Number(url.port) };
}

t.test('idle connections past the limit are closed at once; the data plane keeps its descriptors; idle ones end', async (t) => {
  const limit = 16;
  const { cli, web, admin } = await startWithAdmin(t, ['--admin-max-connections', String(limit)]);
  const pid = cli.child.pid!;
  // One flow first: the data plane keeps the pipes it used for the next ones.
  await integrityExchange(web, 64 * 1024, 64 * 1024, 10_000);
  const before = descriptors(pid);

  // Four times the limit, each connected and silent.
  const idle: net.Socket[] = [];
  const closed: Promise<void>[] = [];
  let closedCount = 0;
  for (let i = 0; i < limit * 4; i++) {
    const s = net.connect(admin, '127.0.0.1');
    s.on('error', () => {});
    idle.push(s);
    closed.push(new Promise((resolve) => s.once('close', () => resolve(void closedCount++))));
  }
  t.teardown(() => idle.forEach((s) => s.destroy()));
  await within(
    new Promise<void>((resolve) => {
      const check = () => (closedCount >= limit * 3 ? resolve() : setImmediate(check));
      check();
    }),
    10_000,
    'the connections past the limit to be closed',
  );
  const held = descriptors(pid) - before;
  t.ok(held <= limit + 2, `lb4 holds at most the limit (${limit}) of them: ${held} more descriptors`);
  await cli.waitForLog('admin API at its connection limit: new connections are closed');

  await integrityExchange(web, 64 * 1024, 64 * 1024, 10_000);
  t.pass('the data plane accepts and serves a client while the admin port is full');

  // The silent ones send no headers: they are closed by the header timeout, with no request sent.
  await within(Promise.all(closed), 20_000, 'the idle connections to be closed by lb4');
  t.equal(closedCount, limit * 4, 'every idle connection was closed by lb4');
  const status = await call({ port: admin }, 'GET', '/status');
  t.equal(status.status, 200, 'the admin port serves again');
  const after = descriptors(pid) - before;
  t.ok(after <= 2, `and its descriptors are back (${after} more than before)`);

  // A kept-alive connection that asks nothing more is closed too.
  const keep = net.connect(admin, '127.0.0.1');
  keep.on('error', () => {});
  const keptClosed = new Promise<string>((resolve) => {
    let text = '';
    keep.on('data', (d: Buffer) => (text += d.toString('latin1')));
    keep.on('close', () => resolve(text));
  });
  keep.write('GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  t.match(await within(keptClosed, 20_000, 'the kept-alive connection to be closed'), /^HTTP\/1\.1 200/, 'answered, then closed when idle');
});

t.test('under a low ulimit -n the admin limit is lowered, so idle admin clients leave the data plane its descriptors', async (t) => {
  t.equal(openFileLimit('Max open files            256                  4096                 files     \n'), 256, 'the soft limit is read');
  t.equal(openFileLimit('Max open files            unlimited            unlimited            files     \n'), undefined);
  t.equal(adminConnectionLimit(256, 256), 64, 'a quarter of the descriptor limit');
  t.equal(adminConnectionLimit(256, 1024), 256, 'the configured limit when it is lower');
  t.equal(adminConnectionLimit(256, undefined), 256);
  t.equal(adminConnectionLimit(256, 2), 1, 'never 0 (Node would refuse every connection)');

  const fdLimit = 256;
  // The default admin limit (256) is as many as the process may open at all.
  const { cli, web, admin } = await startWithAdmin(t, [], fdLimit);
  const lowered = await cli.waitForLog('admin API connection limit lowered to a quarter of the descriptor limit (ulimit -n)');
  t.match(lowered, { maxConnections: fdLimit / 4, configured: 256, descriptorLimit: fdLimit });
  await integrityExchange(web, 64 * 1024, 64 * 1024, 10_000);

  // Twice the descriptor limit, each connected and silent: held until the 5 s header timeout.
  const idle: net.Socket[] = [];
  for (let i = 0; i < fdLimit * 2; i++) {
    const s = net.connect(admin, '127.0.0.1');
    s.on('error', () => {});
    idle.push(s);
  }
  t.teardown(() => idle.forEach((s) => s.destroy()));
  // Without the lowered limit the process runs out of descriptors before the admin port reaches
  // its own limit, and this line never comes.
  t.match(await cli.waitForLog('admin API at its connection limit: new connections are closed'), { maxConnections: fdLimit / 4 });
  await integrityExchange(web, 64 * 1024, 64 * 1024, 10_000);
  t.pass('the data plane serves a client while the admin port holds all it may');
});

t.test('431 for a long URL or headers, 400 for bad query values, nothing logged as a failure', async (t) => {
  const { cli, admin } = await startWithAdmin(t, []);
  t.match(await rawStatus(admin, `GET /status?${'a'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`), /^HTTP\/1\.1 431/, 'a 100 KB URL: 431');
  t.match(await rawStatus(admin, `GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'b'.repeat(40_000)}\r\n\r\n`), /^HTTP\/1\.1 431/, '40 KB of headers: 431');
  t.match(await rawStatus(admin, 'NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400/, 'not HTTP: 400');

  for (const value of ['1e15', '-1', '1.5', '999999999999999', '1000001', 'abc', '0x10']) {
    const reply = await call({ port: admin }, 'GET', `/connections?offset=${encodeURIComponent(value)}`);
    t.equal(reply.status, 400, `offset=${value}: 400`);
    t.match(reply.json?.error, { code: 'LB4_INVALID_OPTION', field: 'offset' });
  }
  t.equal((await call({ port: admin }, 'GET', '/connections?limit=999999999999999')).status, 400, 'limit out of range: 400');
  t.equal((await call({ port: admin }, 'GET', '/connections?offset=1000000')).status, 200, 'the deepest page is served');
  t.equal((await call({ port: admin }, 'GET', '/status')).status, 200);
  t.same(cli.logs('admin request failed'), [], 'no request was logged as a failure (no stack trace)');
  t.notMatch(cli.stderr, /\n\s+at /, 'no stack trace on stderr');
});

t.test('the token requirement follows the resolved address, not its text', async (t) => {
  const base = { listen: '127.0.0.1:0', backends: ['127.0.0.1:80'] };
  await t.rejects(validateOptions({ ...base, admin: { listen: '127.example.invalid:9090' } }), { code: 'LB4_UNRESOLVABLE_HOST', field: 'admin.listen' }, 'a name that starts with 127. is not loopback');
  await t.rejects(validateOptions({ ...base, admin: { listen: '[::ffff:10.0.0.1]:9090' } }), { field: 'admin.token', message: /not loopback/ });
  t.match((await validateOptions({ ...base, admin: { listen: 'localhost:0' } })).admin, { kind: 'tcp', host: 'localhost', token: null }, 'localhost resolves to loopback');
  t.match((await validateOptions({ ...base, admin: { listen: '[::ffff:127.0.0.1]:0' } })).admin, { token: null }, 'so does a mapped 127/8 address');
  t.match((await validateOptions({ ...base, admin: { listen: '127.0.0.2:0' } })).admin, { ip: '127.0.0.2', maxConnections: 256 });
  await t.rejects(validateOptions({ ...base, admin: { listen: '127.0.0.1:0', maxConnections: 0 } }), { code: 'LB4_INVALID_OPTION', field: 'admin.maxConnections' });
  await t.rejects(validateOptions({ ...base, admin: { listen: '127.0.0.1:0', maxConnections: 'many' } }), { field: 'admin.maxConnections', message: /"many"/ });
});

t.test('an admin address lb4 cannot listen on: one accurate line, nothing logged before it', async (t) => {
  const missing = join(tmpdir(), `lb4-reliab-missing-${process.pid}`, 'admin.sock');
  const run = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--admin', missing]);
  t.not(run.exit.code, 0);
  const line = onlyLine(t, run.stderr);
  t.match(line, /the directory .*lb4-reliab-missing-\d+ does not exist/);
  t.notMatch(line, /permission denied|below 1024/);

  const holder = net.createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const inUse = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--admin', String(taken)]);
  t.not(inUse.exit.code, 0);
  t.match(onlyLine(t, inUse.stderr), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken}: address already in use`), 'no "lb4 started" or "lb4 stopped" before the error');
});
