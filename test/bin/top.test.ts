// `lb4 top` and `lb4 backends --watch`: the frame's rates from fixed samples, then against a real
// lb4 with two real backends and real traffic, run as an operator runs them (child processes
// from dist/).

import { spawn } from 'node:child_process';
import t from 'tap';
import { rates, topFrame, type TopSample } from '../../bin/commands/top-frame.js';
import { buildDist, Cli, cliPath, killChildren, onlyLine, runCli, startCli, waitMs } from '../helpers/cli.js';
import { connect, echoBackend, readAll, within } from '../helpers/sockets.js';

t.before(buildDist);
t.teardown(killChildren);

const clear = '\x1b[H\x1b[2J';

function sampleAt(at: number, flows: number, bytesIn: number, bytesOut: number, active: number): TopSample {
  const counters = { flows_total: flows, flows_active: active, bytes_to_backend: bytesIn, bytes_to_client: bytesOut };
  return {
    at,
    status: { version: '9.9.9', uptimeSeconds: 3725, backends: { total: 1, up: 0, down: 1, draining: 0, maintenance: 0 }, openFlows: active },
    listeners: [{ name: 'web', address: '::1', port: 8080, counters }],
    backends: [{ id: 'a', listener: 'web', address: '127.0.0.1:9001', weight: 3, effectiveWeight: 3, state: 'up', health: 'down', healthReason: 'connection refused', counters }],
    cluster: null,
  };
}

t.test('a frame: rates are counter deltas over the time between two samples', async (t) => {
  t.same(rates({ flows_total: 10, bytes_to_backend: 0, bytes_to_client: 100 }, { flows_total: 30, bytes_to_backend: 4096, bytes_to_client: 100 }, 2), { flows: 10, in: 2048, out: 0 });
  t.equal(rates(undefined, { flows_total: 1 }, 1), null, 'no rate from one sample');
  t.equal(rates({ flows_total: 5 }, { flows_total: 1 }, 1), null, 'none across a counter that restarted');
  const frame = topFrame(sampleAt(1000, 0, 0, 0, 0), sampleAt(3000, 40, 3 * 1024 * 1024, 1024, 7), '(test)');
  const [summary, , listenerHeader, listener, , backendHeader, backend] = frame.split('\n');
  t.match(summary, /^lb4 9\.9\.9 {2}up 1h02m {2}backends: 0 up, 1 down.* open flows: 7 {2}\(test\)$/);
  t.match(listenerHeader, /^LISTENER +ADDRESS +ACTIVE +FLOWS\/S +IN\/S +OUT\/S$/);
  t.match(listener, /^web +\[::1\]:8080 +7 +20 +1\.5 MiB\/s +512 B\/s$/);
  t.match(backendHeader, /^LISTENER +BACKEND +ADDRESS +STATE +HEALTH +WEIGHT +ACTIVE +FLOWS\/S +IN\/S +OUT\/S +REASON$/);
  t.match(backend, /^web +a +127\.0\.0\.1:9001 +down +down +3 +7 +20 +1\.5 MiB\/s +512 B\/s +connection refused$/, 'health down shows as the state, with its reason');
  t.match(topFrame(null, sampleAt(0, 1, 1, 1, 1), '').split('\n')[3], /^web +\[::1\]:8080 +1 +- +- +-$/, 'no rates from a first sample');
  const paired = { ...sampleAt(0, 1, 1, 1, 1), cluster: { node: { id: 'lb-a', state: 'active', priority: 200 }, peer: { up: true, id: 'lb-b', state: 'backup', address: '127.0.0.2', port: 7000 }, vips: [{ address: '192.0.2.10/24', held: true }] } };
  t.equal(topFrame(null, paired, '').split('\n')[1], 'HA: lb-a active (priority 200); peer lb-b backup; VIPs held: 192.0.2.10/24', 'an HA node gets a line for the pair');
});

/** Echo exchanges through the balancer until `until` settles. */
async function trafficUntil(port: number, until: Promise<unknown>): Promise<number> {
  let done = false;
  void until.finally(() => (done = true));
  let exchanges = 0;
  while (!done) {
    const socket = await connect(port);
    socket.end(Buffer.alloc(8192, 7));
    const { data } = await readAll(socket, waitMs);
    if (data.length !== 8192) throw new Error(`echo returned ${data.length} bytes`);
    exchanges++;
  }
  return exchanges;
}

t.test('lb4 top and lb4 backends --watch against a real balancer', async (t) => {
  const a = await echoBackend();
  const b = await echoBackend();
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', `${a.address},id=a`, '--backend', `${b.address},id=b`, '--admin', '127.0.0.1:0', '--log-format', 'json']);
  const url = (await cli.waitForLog('admin API listening')).url as string;

  // --once: one frame, rates over one interval, during which traffic flows.
  const once = runCli(['top', '--once', '--interval', '1500ms', '--admin', url]);
  const exchanges = await trafficUntil(ports[0], once);
  const { exit, stdout, stderr } = await once;
  t.equal(exit.code, 0, `top --once exits 0 ${stderr}`);
  t.ok(exchanges > 0, `${exchanges} flows went through while it measured`);
  t.notMatch(stdout, /\x1b/, 'no terminal codes with --once');
  const rows = stdout.split('\n');
  const listenerRow = rows.find((line) => line.startsWith('127.0.0.1:0 '));
  t.ok(listenerRow, `the listener is shown:\n${stdout}`);
  const [, , active, flowsPerSecond, bytesIn, , bytesOut] = listenerRow!.trim().split(/\s+/);
  t.match(active, /^\d+$/);
  t.ok(Number(flowsPerSecond) > 0, `flows/s above zero: ${flowsPerSecond}`);
  t.ok(Number(bytesIn) > 0 && Number(bytesOut) > 0, `bytes/s in and out above zero: ${bytesIn}, ${bytesOut}`);
  for (const id of ['a', 'b']) {
    const backendRow = rows.find((line) => new RegExp(`^127\\.0\\.0\\.1:0 +${id} +`).test(line));
    t.match(backendRow, /^127\.0\.0\.1:0 +\w+ +127\.0\.0\.1:\d+ +up +unchecked +1 +\d+ +[\d.]+ +/, `backend ${id} is shown with its state and rates`);
  }

  // Live: frames cleared and redrawn until SIGINT, then the cursor is shown again and it exits 0.
  for (const args of [['top', '--interval', '200ms'], ['backends', '--watch', '--interval', '200ms']]) {
    const live = new Cli([...args, '--admin', url]);
    await live.waitForLine('stdout', 'a second frame', () => (live.stdout.split(clear).length > 2 ? true : undefined));
    live.signal('SIGINT');
    const ended = await live.waitForExit();
    t.same(ended, { code: 0, signal: null }, `lb4 ${args.join(' ')} exits cleanly on Ctrl-C`);
    t.match(live.stdout, /\x1b\[\?25h$/, 'and shows the cursor again');
    t.match(live.stdout.split(clear).at(-1), args[0] === 'top' ? /FLOWS\/S/ : /^LISTENER +BACKEND/, 'each frame is the whole view');
  }

  // In a terminal, q quits: script(1) gives lb4 one, and its input is the pipe written here.
  const inTerminal = spawn('script', ['-qec', `'${process.execPath}' '${cliPath}' top --admin ${url}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => void inTerminal.kill('SIGKILL'));
  let screen = '';
  inTerminal.stdout.setEncoding('utf8');
  const drawn = new Promise<void>((resolve) => inTerminal.stdout.on('data', (chunk: string) => (screen += chunk).includes('FLOWS/S') && resolve()));
  await within(drawn, waitMs, 'lb4 top to draw in a terminal');
  inTerminal.stdin.write('q');
  const [code] = await within(new Promise<[number | null]>((resolve) => inTerminal.once('exit', (c) => resolve([c]))), waitMs, 'lb4 top to quit on q');
  t.equal(code, 0, 'q quits lb4 top');
});

t.test('a bad --interval is refused with exit 2, naming the flag', async (t) => {
  for (const args of [
    ['top', '--interval', '10ms'],
    ['top', '--interval', 'soon'],
    ['backends', '--watch', '--interval', '0'],
    ['backends', '--interval', '1s'],
  ]) {
    const { exit, stderr } = await runCli([...args, '--admin', '127.0.0.1:1']);
    t.equal(exit.code, 2, `lb4 ${args.join(' ')} exits 2`);
    t.match(onlyLine(t, stderr), /interval/i, 'and names --interval');
  }
});
