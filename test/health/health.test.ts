// Active health checks: config validation and the CLI shorthand, every check type against real
// fake servers on 127.0.0.1 (pass, refused, timeout, wrong status/body/banner, early close), the
// rise/fall state machine as a table, and the monitor driven by a hand-advanced clock. Then
// passive health's count of consecutive connect failures.

import { once } from 'node:events';
import type net from 'node:net';
import t, { type Test } from 'tap';
import { Lb4Error } from '../../lib/errors.js';
import { formatHealthFlag, parseHealthFlag, sameHealthConfig, validateHealthConfig, type HealthConfig, type HealthOptions } from '../../lib/health/check-config.js';
import { maxResponseBytes, runCheck, type CheckResult } from '../../lib/health/checkers.js';
import { HealthMonitor, type HealthResultEvent, type HealthTransition } from '../../lib/health/monitor.js';
import { ConsecutiveFailures } from '../../lib/health/passive.js';
import { riseFall, type RiseFallState } from '../../lib/health/rise-fall.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { refusingPort, startBackend, until, within, type TestBackend } from '../helpers/sockets.js';

const loopback = '127.0.0.1';

/** A validated config with test-friendly timing (short timeout) unless the options say otherwise. */
function config(options: Partial<HealthOptions> & { type: HealthOptions['type'] }): HealthConfig {
  return validateHealthConfig({ interval: 1000, timeout: 200, ...options }, 'health');
}

function check(port: number, options: Partial<HealthOptions> & { type: HealthOptions['type'] }): Promise<CheckResult> {
  return within(runCheck({ ip: loopback, port }, config(options)), 5000, 'a health check');
}

async function server(t: Test, onConnection: (socket: net.Socket) => void): Promise<TestBackend> {
  const backend = await startBackend(onConnection);
  t.teardown(() => backend.close());
  return backend;
}

/** An HTTP server that reads each request head, records it, then lets `respond` answer. */
async function httpServer(t: Test, respond: (socket: net.Socket) => void): Promise<TestBackend & { requests: string[] }> {
  const requests: string[] = [];
  const backend = await server(t, (socket) => {
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      requests.push(head);
      respond(socket);
    });
  });
  return Object.assign(backend, { requests });
}

function later(fn: () => void, ms = 30): void {
  setTimeout(fn, ms);
}

// --- configs ---------------------------------------------------------------------------------

t.test('config: defaults, forms of each option, frozen and idempotent', async (t) => {
  const tcp = validateHealthConfig({ type: 'tcp' }, 'health');
  t.same(tcp, { type: 'tcp', interval: 2000, timeout: 1000, rise: 2, fall: 3, jitter: 0.1 });
  t.ok(Object.isFrozen(tcp));

  const http = validateHealthConfig({ type: 'http' }, 'health');
  t.same(http, { type: 'http', interval: 2000, timeout: 1000, rise: 2, fall: 3, jitter: 0.1, method: 'GET', path: '/', expectStatus: [200, 399] });
  t.ok(Object.isFrozen(http) && http.type === 'http' && Object.isFrozen(http.expectStatus));

  const status = (expectStatus: unknown) => (validateHealthConfig({ type: 'http', expectStatus }, 'h') as { expectStatus: readonly number[] }).expectStatus;
  t.same(status(200), [200, 200]);
  t.same(status('200-299'), [200, 299]);
  t.same(status(' 204 '), [204, 204]);
  t.same(status('2xx'), [200, 299]);
  t.same(status([200, 204]), [200, 204]);

  const timed = validateHealthConfig({ type: 'tcp', interval: '5s', timeout: '750ms', rise: '4', fall: 1, jitter: 0, address: '::1', port: 8080 }, 'h');
  t.same(timed, { type: 'tcp', interval: 5000, timeout: 750, rise: 4, fall: 1, jitter: 0, address: '::1', port: 8080 });
  t.equal(validateHealthConfig({ type: 'tcp', interval: '500ms' }, 'h').timeout, 500, 'the default timeout shrinks to a shorter interval');

  const send = validateHealthConfig({ type: 'send-expect', send: 'PING\r\n', expect: '+PONG' }, 'h');
  t.same(send, { type: 'send-expect', interval: 2000, timeout: 1000, rise: 2, fall: 3, jitter: 0.1, send: 'PING\r\n', expect: '+PONG' });
  const hex = validateHealthConfig({ type: 'send-expect', sendHex: '0x DE:AD be ef', expectHex: 'CAFE' }, 'h');
  t.same(hex, { type: 'send-expect', interval: 2000, timeout: 1000, rise: 2, fall: 3, jitter: 0.1, sendHex: 'deadbeef', expectHex: 'cafe' });

  for (const c of [tcp, http, timed, send, hex, validateHealthConfig({ type: 'http', method: 'HEAD', path: '/ping', host: 'example.test', expectStatus: '2xx' }, 'h')]) {
    t.same(validateHealthConfig(c, 'again'), c, `${c.type}: a validated config validates to itself`);
  }
  t.equal(validateHealthConfig({ type: 'tcp', path: undefined } as HealthOptions, 'h').type, 'tcp', 'undefined keys (from spreads) are ignored');
});

t.test('config: every error names its field', async (t) => {
  const cases: Array<[raw: unknown, field: string, message: RegExp, code?: string]> = [
    [{ type: 'tcp', rise: 0 }, 'listeners[0].health.rise', /^listeners\[0\]\.health\.rise: must be a whole number from 1 to 100, got 0$/],
    [{ type: 'tcp', fall: 1.5 }, 'listeners[0].health.fall', /must be a whole number from 1 to 100, got 1\.5/],
    [{ type: 'tcp', fall: 101 }, 'listeners[0].health.fall', /from 1 to 100, got 101/],
    [{}, 'listeners[0].health.type', /must be one of tcp, http, send-expect, udp, got undefined/],
    [{ type: 'sctp' }, 'listeners[0].health.type', /got "sctp"/],
    [{ type: 'udp' }, 'listeners[0].health.send', /is required: the datagram to send/],
    [{ type: 'udp', send: 'a', sendHex: '00' }, 'listeners[0].health.sendHex', /not both/],
    [{ type: 'udp', send: 'a', expect: '' }, 'listeners[0].health.expect', /leave it out to accept any reply/],
    [{ type: 'udp', send: 'a', match: 'suffix' }, 'listeners[0].health.match', /must be prefix or substring, got "suffix"/],
    [{ type: 'tcp', match: 'prefix' }, 'listeners[0].health.match', /only applies to udp checks, not tcp/],
    [{ type: 'tcp', path: '/x' }, 'listeners[0].health.path', /only applies to http checks, not tcp/],
    [{ type: 'http', expect: 'x' }, 'listeners[0].health.expect', /only applies to send-expect checks, not http/],
    [{ type: 'http', colour: 'red' }, 'listeners[0].health.colour', /unknown option \(known for http: type, interval, .*expectBody\)/],
    [{ type: 'tcp', interval: '1s', timeout: '2s' }, 'listeners[0].health.timeout', /must not exceed the interval \(1s\), got 2s/],
    [{ type: 'tcp', interval: '2 parsecs' }, 'listeners[0].health.interval', /"2 parsecs" is not a duration/, 'LB4_INVALID_DURATION'],
    [{ type: 'tcp', interval: 10 }, 'listeners[0].health.interval', /must be from 50ms to 1h, got 10ms/],
    [{ type: 'tcp', timeout: 1 }, 'listeners[0].health.timeout', /must be from 10ms to 1h, got 1ms/],
    [{ type: 'tcp', jitter: 0.7 }, 'listeners[0].health.jitter', /from 0 to 0\.5 \(0\.1 = \+-10%\), got 0\.7/],
    [{ type: 'tcp', address: 'db.example' }, 'listeners[0].health.address', /must be a numeric IP address/],
    [{ type: 'tcp', port: 70000 }, 'listeners[0].health.port', /from 1 to 65535, got 70000/],
    [{ type: 'http', path: 'healthz' }, 'listeners[0].health.path', /must start with \//],
    [{ type: 'http', path: '/a b' }, 'listeners[0].health.path', /no spaces/],
    [{ type: 'http', method: 'GET /' }, 'listeners[0].health.method', /must be an HTTP method/],
    [{ type: 'http', host: 'a\r\nX-Evil: 1' }, 'listeners[0].health.host', /must be a host name/],
    [{ type: 'http', expectStatus: 600 }, 'listeners[0].health.expectStatus', /must be a status such as 200/],
    [{ type: 'http', expectStatus: 'ok' }, 'listeners[0].health.expectStatus', /got "ok"/],
    [{ type: 'http', expectStatus: [299, 200] }, 'listeners[0].health.expectStatus', /the range 299-200 is empty/],
    [{ type: 'http', method: 'HEAD', expectBody: 'ok' }, 'listeners[0].health.expectBody', /HEAD: its responses have no body/],
    [{ type: 'http', expectBody: '' }, 'listeners[0].health.expectBody', /non-empty string/],
    [{ type: 'send-expect', send: 'PING' }, 'listeners[0].health.expect', /is required/],
    [{ type: 'send-expect', send: 'a', sendHex: '00', expect: 'b' }, 'listeners[0].health.sendHex', /give send \(text\) or sendHex, not both/],
    [{ type: 'send-expect', expect: 'a', expectHex: '00' }, 'listeners[0].health.expectHex', /not both/],
    [{ type: 'send-expect', expectHex: 'abc' }, 'listeners[0].health.expectHex', /even number of hex digits/],
    [{ type: 'send-expect', expectHex: 'zz' }, 'listeners[0].health.expectHex', /even number of hex digits/],
    [{ type: 'send-expect', expect: '' }, 'listeners[0].health.expect', /must not be empty/],
    [{ type: 'send-expect', expect: 'x'.repeat(5000) }, 'listeners[0].health.expect', /at most 4096 bytes, got 5000/],
    [42, 'listeners[0].health', /must be an object .* or a string/],
  ];
  for (const [raw, field, message, code = 'LB4_INVALID_OPTION'] of cases) {
    t.throws(() => validateHealthConfig(raw, 'listeners[0].health'), { name: 'Lb4Error', code, field, message }, `${JSON.stringify(raw)}`.slice(0, 80));
  }
  t.throws(() => validateHealthConfig({ type: 'tcp', rise: 0 }, 'health'), Lb4Error);
});

t.test('config: the CLI shorthand', async (t) => {
  t.same(parseHealthFlag('tcp'), { type: 'tcp' });
  t.same(parseHealthFlag('http'), { type: 'http' });
  t.same(parseHealthFlag('http:/healthz'), { type: 'http', path: '/healthz' });
  t.same(parseHealthFlag('http:GET /healthz'), { type: 'http', method: 'GET', path: '/healthz' });
  t.same(parseHealthFlag('http:HEAD /ping,status=2xx,host=example.test'), { type: 'http', method: 'HEAD', path: '/ping', expectStatus: '2xx', host: 'example.test' });
  t.same(parseHealthFlag('http:/a\\,b,body=all ok,expect-status=200-204'), { type: 'http', path: '/a,b', expectBody: 'all ok', expectStatus: '200-204' });
  t.same(parseHealthFlag('send-expect,send=PING\\r\\n,expect=+PONG'), { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' });
  t.same(parseHealthFlag('send-expect,expect=SSH-2.0-'), { type: 'send-expect', expect: 'SSH-2.0-' });
  t.same(parseHealthFlag('send-expect,send-hex=0001,expect-hex=CAFE'), { type: 'send-expect', sendHex: '0001', expectHex: 'CAFE' });
  t.same(parseHealthFlag('send-expect,send=a\\=b\\x01\\\\,expect=\\t'), { type: 'send-expect', send: 'a=b\x01\\', expect: '\t' });
  const all = parseHealthFlag('tcp,interval=1s,timeout=500ms,rise=3,fall=2,jitter=0,address=127.0.0.1,port=8080');
  t.same(validateHealthConfig(all, 'h'), { type: 'tcp', interval: 1000, timeout: 500, rise: 3, fall: 2, jitter: 0, address: '127.0.0.1', port: 8080 });
  t.ok(Object.isFrozen(all));
  t.same(validateHealthConfig('http:/healthz,rise=3', 'health'), validateHealthConfig({ type: 'http', path: '/healthz', rise: 3 }, 'h'), 'a string config is the shorthand');

  // What the CLI does: flags overlaid on the parsed shorthand, then validated once.
  const overlaid = validateHealthConfig({ ...parseHealthFlag('http:/x', '--health-check'), interval: '500ms' }, 'health');
  t.equal(overlaid.timeout, 500, 'an interval given later still shortens the default timeout');

  const errors: Array<[string, RegExp, string?]> = [
    ['', /must be a check such as tcp/],
    ['ftp', /unknown check type "ftp" in "ftp" \(known: tcp, http, send-expect, udp\)/],
    ['tcp:/x', /"tcp:\.\.\." takes no argument/],
    ['http:GET', /"GET" is not a path|must start with \//, '--health-check.path'],
    ['http:/x,colour=red', /unknown parameter "colour" in "http:\/x,colour=red" \(known: interval, .*\)/],
    ['http:/x,rise', /"rise" is not key=value/],
    ['http:/x,rise=1,rise=2', /"rise" is given twice/],
    ['send-expect,expect=\\q', /unknown escape "\\q"/],
    ['tcp,rise=0', /must be a whole number from 1 to 100, got "0"/, '--health-check.rise'],
    ['http:/x,status=999', /must be a status/, '--health-check.expectStatus'],
  ];
  for (const [text, message, field = '--health-check'] of errors) {
    t.throws(() => parseHealthFlag(text, '--health-check'), { code: 'LB4_INVALID_OPTION', field, message }, JSON.stringify(text));
  }

  const configs = [
    validateHealthConfig({ type: 'tcp', interval: '1.5s', jitter: 0.25, port: 81 }, 'h'),
    validateHealthConfig({ type: 'http', method: 'OPTIONS', path: '/s?a=1', host: 'h.test', expectStatus: 204, expectBody: 'a,b=c\\d' }, 'h'),
    validateHealthConfig({ type: 'send-expect', send: 'PING\r\n\ttab\u00e9', expect: '+PONG', address: '::1' }, 'h'),
    validateHealthConfig({ type: 'send-expect', sendHex: '00ff', expectHex: 'cafe' }, 'h'),
    validateHealthConfig({ type: 'udp', send: 'ping\r\n', expect: 'pong', match: 'prefix' }, 'h'),
    validateHealthConfig({ type: 'udp', sendHex: '0001' }, 'h'),
  ];
  for (const c of configs) {
    const text = formatHealthFlag(c);
    const again = validateHealthConfig(parseHealthFlag(text), 'h');
    t.same(again, c, `round trip through "${text}"`);
    t.ok(sameHealthConfig(again, c));
  }
  t.notOk(sameHealthConfig(configs[0], validateHealthConfig({ type: 'tcp', interval: '1.5s', jitter: 0.25, port: 82 }, 'h')));
  t.notOk(sameHealthConfig(configs[1], validateHealthConfig({ ...configs[1], expectStatus: 200 }, 'h')));
});

// --- checks against real sockets ------------------------------------------------------------

t.test('tcp checks', async (t) => {
  const backend = await server(t, () => {});
  const pass = await check(backend.port, { type: 'tcp' });
  t.match(pass, { ok: true, reason: 'connected' });
  t.ok(pass.durationMs >= 0 && pass.durationMs < 1000, `took ${pass.durationMs}ms`);
  // The check resets its connection at once: nothing stays open on either side.
  await until(() => backend.sockets.size === 0, 5000, 'the checked connection to close');

  t.match(await check(await refusingPort(), { type: 'tcp' }), { ok: false, reason: 'connection refused (ECONNREFUSED)' });

  const blackhole = await startBlackhole();
  t.teardown(() => blackhole.close());
  const timedOut = await check(blackhole.port, { type: 'tcp', timeout: 200 });
  t.match(timedOut, { ok: false, reason: 'timed out after 200ms connecting' });
  t.ok(timedOut.durationMs >= 190, `gave up after ${timedOut.durationMs}ms`);

  // A separate check port or address overrides the target's.
  const refused = await refusingPort();
  t.match(await within(runCheck({ ip: loopback, port: refused }, config({ type: 'tcp', port: backend.port })), 5000, 'check'), { ok: true });
  // 127.0.0.2 is loopback too, but the backend listens on 127.0.0.1 only.
  t.match(await within(runCheck({ ip: '127.0.0.2', port: backend.port }, config({ type: 'tcp' })), 5000, 'check'), { ok: false, reason: /ECONNREFUSED/ });
  t.match(await within(runCheck({ ip: '127.0.0.2', port: backend.port }, config({ type: 'tcp', address: loopback })), 5000, 'check'), { ok: true });
});

t.test('http checks', async (t) => {
  const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall ok';

  t.test('passes on a good status, with a minimal request', async (t) => {
    const backend = await httpServer(t, (s) => s.end(ok));
    t.match(await check(backend.port, { type: 'http' }), { ok: true, reason: 'HTTP 200' });
    t.same(backend.requests, [`GET / HTTP/1.1\r\nHost: 127.0.0.1:${backend.port}\r\nConnection: close\r\nUser-Agent: lb4-health\r\n\r\n`]);
    t.match(await check(backend.port, { type: 'http', method: 'HEAD', path: '/healthz?full=1', host: 'app.test' }), { ok: true });
    t.equal(backend.requests[1], 'HEAD /healthz?full=1 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nUser-Agent: lb4-health\r\n\r\n');
    await until(() => backend.sockets.size === 0, 5000, 'the checked connections to close');
  });

  t.test('fails on a status outside the range', async (t) => {
    const backend = await httpServer(t, (s) => s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'));
    t.match(await check(backend.port, { type: 'http' }), { ok: false, reason: 'HTTP 503 (expected 200-399)' });
    t.match(await check(backend.port, { type: 'http', expectStatus: 503 }), { ok: true, reason: 'HTTP 503' });
    t.match(await check(backend.port, { type: 'http', expectStatus: '2xx' }), { ok: false, reason: 'HTTP 503 (expected 200-299)' });
    const noContent = await httpServer(t, (s) => s.end('HTTP/1.0 204 No Content\r\n\r\n'));
    t.match(await check(noContent.port, { type: 'http', expectStatus: 200 }), { ok: false, reason: 'HTTP 204 (expected 200)' });
  });

  t.test('checks the body when asked', async (t) => {
    const good = await httpServer(t, (s) => s.end(ok));
    t.match(await check(good.port, { type: 'http', expectBody: 'ok' }), { ok: true, reason: 'HTTP 200, body has "ok"' });
    // The header block is not the body.
    t.match(await check(good.port, { type: 'http', expectBody: 'Content' }), { ok: false, reason: 'body lacks "Content"' });

    // Content-Length reached: the verdict does not wait for the close.
    const lengthOnly = await httpServer(t, (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfail'));
    t.match(await check(lengthOnly.port, { type: 'http', expectBody: 'ok', timeout: 3000, interval: 3000 }), { ok: false, reason: 'body lacks "ok"' });
    // No Content-Length: the close ends the body.
    const closing = await httpServer(t, (s) => s.end('HTTP/1.1 200 OK\r\n\r\nnot good'));
    t.match(await check(closing.port, { type: 'http', expectBody: 'fine' }), { ok: false, reason: 'body lacks "fine"' });

    // Status line, headers and body cut into pieces across reads.
    const pieces = await httpServer(t, (s) => {
      s.write('HTT');
      later(() => s.write('P/1.1 200 OK\r\nServer: x\r'));
      later(() => s.write('\n\r\nall o'), 60);
      later(() => s.end('k'), 90);
    });
    t.match(await check(pieces.port, { type: 'http', expectBody: 'ok', timeout: 2000, interval: 2000 }), { ok: true, reason: 'HTTP 200, body has "ok"' });

    // A body that never has it: the check stops reading at maxResponseBytes.
    const endless = await httpServer(t, (s) => {
      s.write('HTTP/1.1 200 OK\r\n\r\n');
      s.write(Buffer.alloc(maxResponseBytes + 1000, 'x'));
    });
    t.match(await check(endless.port, { type: 'http', expectBody: 'ok', timeout: 2000, interval: 2000 }), { ok: false, reason: 'body lacks "ok" in the first 65536 bytes of the response' });
  });

  t.test('timeouts say what was awaited', async (t) => {
    const silent = await httpServer(t, () => {});
    t.match(await check(silent.port, { type: 'http' }), { ok: false, reason: 'timed out after 200ms waiting for the HTTP status line' });
    const slowBody = await httpServer(t, (s) => s.write('HTTP/1.1 200 OK\r\n\r\npartial'));
    t.match(await check(slowBody.port, { type: 'http', expectBody: 'ok' }), { ok: false, reason: 'timed out after 200ms reading the body: no "ok" yet' });
  });

  t.test('connection problems', async (t) => {
    t.match(await check(await refusingPort(), { type: 'http' }), { ok: false, reason: 'connection refused (ECONNREFUSED)' });
    const closer = await httpServer(t, (s) => s.end());
    t.match(await check(closer.port, { type: 'http' }), { ok: false, reason: 'connection closed before the HTTP status line' });
    const resetter = await httpServer(t, (s) => s.resetAndDestroy());
    t.match(await check(resetter.port, { type: 'http' }), { ok: false, reason: 'connection reset by peer (ECONNRESET)' });
    const ssh = await server(t, (s) => s.write('SSH-2.0-OpenSSH_9.2\r\n'));
    t.match(await check(ssh.port, { type: 'http' }), { ok: false, reason: 'not an HTTP response: got "SSH-2.0-OpenSSH_9.2\\r\\n"' });
    const garbled = await httpServer(t, (s) => s.end('HTTP/1.1 OK\r\n\r\n'));
    t.match(await check(garbled.port, { type: 'http' }), { ok: false, reason: 'not an HTTP response: got "HTTP/1.1 OK\\r"' });
    const cut = await httpServer(t, (s) => s.end('HTTP/1.1 20'));
    t.match(await check(cut.port, { type: 'http' }), { ok: false, reason: 'connection closed in the HTTP status line: got "HTTP/1.1 20"' });
  });
});

t.test('send-expect checks', async (t) => {
  /** A tiny Redis: answers PING with +PONG, anything else with an error, and records what it got. */
  const received: string[] = [];
  const redis = await server(t, (s) => {
    s.on('data', (chunk: Buffer) => {
      received.push(chunk.toString());
      s.write(chunk.toString() === 'PING\r\n' ? '+PONG\r\n' : '-ERR unknown command\r\n');
    });
  });
  t.match(await check(redis.port, { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' }), { ok: true, reason: 'got "+PONG"' });
  t.same(received, ['PING\r\n']);
  t.match(await check(redis.port, { type: 'send-expect', send: 'PONG\r\n', expect: '+PONG' }), {
    ok: false,
    reason: 'timed out after 200ms waiting for "+PONG": got "-ERR unknown command\\r\\n"',
  });

  const banner = await server(t, (s) => s.write('SSH-2.0-lb4test\r\n'));
  t.match(await check(banner.port, { type: 'send-expect', expect: 'SSH-2.0-' }), { ok: true, reason: 'got "SSH-2.0-"' });

  const wrong = await server(t, (s) => s.end('-ERR max clients\r\n'));
  t.match(await check(wrong.port, { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' }), {
    ok: false,
    reason: 'banner mismatch: got "-ERR max clients\\r\\n" expected "+PONG"',
  });

  const closer = await server(t, (s) => s.end());
  t.match(await check(closer.port, { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' }), { ok: false, reason: 'connection closed before expected bytes' });

  const silent = await server(t, () => {});
  t.match(await check(silent.port, { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' }), { ok: false, reason: 'timed out after 200ms waiting for "+PONG"' });
  t.match(await check(await refusingPort(), { type: 'send-expect', expect: '+PONG' }), { ok: false, reason: 'connection refused (ECONNREFUSED)' });

  const split = await server(t, (s) => {
    s.write('+P');
    later(() => s.write('ON'));
    later(() => s.write('G\r\n'), 60);
  });
  t.match(await check(split.port, { type: 'send-expect', expect: '+PONG', timeout: 2000, interval: 2000 }), { ok: true, reason: 'got "+PONG"' });

  const flood = await server(t, (s) => s.write(Buffer.alloc(maxResponseBytes + 1000, '-')));
  t.match(await check(flood.port, { type: 'send-expect', expect: '+PONG', timeout: 2000, interval: 2000 }), { ok: false, reason: 'banner mismatch: no "+PONG" in the first 65536 bytes' });

  const binaryIn: Buffer[] = [];
  const binary = await server(t, (s) =>
    s.on('data', (chunk: Buffer) => {
      binaryIn.push(chunk);
      s.end(chunk[0] === 0 ? Buffer.from([0x01, 0xca, 0xfe]) : Buffer.from([0x01, 0x02]));
    }),
  );
  t.match(await check(binary.port, { type: 'send-expect', sendHex: '00010203', expectHex: 'cafe' }), { ok: true, reason: 'got 0xcafe' });
  t.same(binaryIn[0], Buffer.from([0, 1, 2, 3]));
  t.match(await check(binary.port, { type: 'send-expect', sendHex: 'ff', expectHex: 'cafe' }), { ok: false, reason: 'banner mismatch: got 0x0102 expected 0xcafe' });

  await until(() => [redis, banner, wrong, closer, silent, split, flood, binary].every((b) => b.sockets.size === 0), 5000, 'every checked connection to close');
});

// --- rise/fall -------------------------------------------------------------------------------

t.test('rise/fall state machine', async (t) => {
  const rules = { rise: 2, fall: 3 };
  const up = (consecutive: number): RiseFallState => ({ up: true, consecutive });
  const down = (consecutive: number): RiseFallState => ({ up: false, consecutive });
  const table: Array<[RiseFallState, boolean, RiseFallState, 'up' | 'down' | undefined]> = [
    [up(0), true, up(0), undefined],
    [up(2), true, up(0), undefined],
    [up(0), false, up(1), undefined],
    [up(1), false, up(2), undefined],
    [up(2), false, down(0), 'down'],
    [down(0), false, down(0), undefined],
    [down(1), false, down(0), undefined],
    [down(0), true, down(1), undefined],
    [down(1), true, up(0), 'up'],
  ];
  for (const [state, passed, next, transition] of table) {
    const step = riseFall(state, passed, rules);
    t.same({ state: { ...step.state }, transition: step.transition }, { state: next, transition }, `${JSON.stringify(state)} + ${passed ? 'pass' : 'fail'}`);
  }
  t.same(riseFall(up(0), false, { rise: 1, fall: 1 }), { state: down(0), transition: 'down' }, 'fall 1: the first failure');
  t.same(riseFall(down(0), true, { rise: 1, fall: 1 }), { state: up(0), transition: 'up' }, 'rise 1: the first pass');

  // A long run: the transitions come exactly on the fall-th failure and the rise-th pass.
  let state = up(0);
  const seen: string[] = [];
  for (const passed of [false, false, true, false, false, false, true, false, true, true, false]) {
    const step = riseFall(state, passed, rules);
    state = step.state;
    seen.push(step.transition ?? (state.up ? 'u' : 'd') + state.consecutive);
  }
  t.same(seen, ['u1', 'u2', 'u0', 'u1', 'u2', 'down', 'd1', 'd0', 'd1', 'up', 'u1']);
});

// --- the monitor -----------------------------------------------------------------------------

interface MonitorRig {
  clock: FakeClock;
  monitor: HealthMonitor;
  results: HealthResultEvent[];
  transitions: HealthTransition[];
  /** Advances the clock by `ms` and waits for the next check result. */
  step(ms: number): Promise<HealthResultEvent>;
}

function monitorRig(t: Test, random: () => number = () => 0.5): MonitorRig {
  const clock = new FakeClock();
  const monitor = new HealthMonitor({ clock, random });
  t.teardown(() => monitor.close());
  const results: HealthResultEvent[] = [];
  const transitions: HealthTransition[] = [];
  monitor.on('result', (e) => results.push(e));
  monitor.on('transition', (e) => transitions.push(e));
  return {
    clock,
    monitor,
    results,
    transitions,
    async step(ms) {
      const got = once(monitor, 'result');
      clock.advance(ms);
      const [event] = await within(got, 5000, 'a health check result');
      return event as HealthResultEvent;
    },
  };
}

t.test('monitor: down exactly on the fall-th failure, up on the rise-th pass', async (t) => {
  let healthy = false;
  const backend = await httpServer(t, (s) => s.end(healthy ? 'HTTP/1.1 200 OK\r\n\r\n' : 'HTTP/1.1 503 Busy\r\n\r\n'));
  const rig = monitorRig(t);
  const cfg = config({ type: 'http', interval: 1000, timeout: 500, rise: 2, fall: 3, jitter: 0 });
  rig.monitor.add('web-1', { ip: loopback, port: backend.port }, cfg, 'up');
  t.same(rig.monitor.status('web-1'), { up: true, consecutive: 0 });

  // random() = 0.5: the first check starts half an interval in; then one every interval.
  const first = await rig.step(500);
  t.match(first, { id: 'web-1', result: { ok: false, reason: 'HTTP 503 (expected 200-399)', at: 1_000_500 } });
  t.match(rig.monitor.status('web-1'), { up: true, consecutive: 1, lastResult: { ok: false } });
  await rig.step(1000);
  t.match(rig.monitor.status('web-1'), { up: true, consecutive: 2 });
  t.same(rig.transitions, [], 'no transition before the fall-th failure');
  const third = await rig.step(1000);
  t.equal(third.result.at, 1_002_500);
  t.same(rig.transitions, [{ id: 'web-1', up: false, reason: '3 consecutive failures: HTTP 503 (expected 200-399)' }]);
  t.same(rig.monitor.status('web-1'), { up: false, consecutive: 0, lastResult: third.result });

  healthy = true;
  await rig.step(1000);
  t.match(rig.monitor.status('web-1'), { up: false, consecutive: 1 });
  t.equal(rig.transitions.length, 1, 'one pass is not enough');
  await rig.step(1000);
  t.same(rig.transitions[1], { id: 'web-1', up: true, reason: '2 consecutive passes: HTTP 200' });
  t.match(rig.monitor.status('web-1'), { up: true, consecutive: 0 });
  t.equal(rig.results.length, 5);
  t.equal(backend.requests.length, 5, 'one request per check');
});

t.test('monitor: a refused target starting down stays down; fall 1 and rise 1 reasons', async (t) => {
  const rig = monitorRig(t, () => 0);
  const refused = await refusingPort();
  rig.monitor.add('a', { ip: loopback, port: refused }, config({ type: 'tcp', rise: 1, fall: 1, jitter: 0 }), 'down');
  const result = await rig.step(0);
  t.match(result.result, { ok: false, reason: 'connection refused (ECONNREFUSED)' });
  t.same(rig.transitions, []);
  const backend = await server(t, () => {});
  rig.monitor.add('b', { ip: loopback, port: backend.port }, config({ type: 'tcp', rise: 1, fall: 1, jitter: 0 }), 'down');
  await rig.step(0);
  t.same(rig.transitions, [{ id: 'b', up: true, reason: 'check passed: connected' }]);
  rig.monitor.update('b', { ip: loopback, port: refused }, config({ type: 'tcp', rise: 1, fall: 1, jitter: 0 }));
  await rig.step(0);
  t.same(rig.transitions[1], { id: 'b', up: false, reason: 'check failed: connection refused (ECONNREFUSED)' });
});

t.test('monitor: timeouts come from the monitor clock; one check in flight per target', async (t) => {
  const backend = await httpServer(t, () => {});
  const rig = monitorRig(t);
  rig.monitor.add('slow', { ip: loopback, port: backend.port }, config({ type: 'http', interval: 1000, timeout: 1000, jitter: 0.5, fall: 2 }), 'up');
  rig.clock.advance(500);
  await until(() => backend.requests.length === 1, 5000, 'the first request');
  // Nothing answers: the check stays in flight however long the real wait, until the clock says.
  const timedOut = await rig.step(1000);
  t.match(timedOut.result, { ok: false, reason: 'timed out after 1000ms waiting for the HTTP status line', durationMs: 1000 });
  // random() = 0.5 means no jitter: the next check was due when this one timed out, so it starts now.
  await until(() => backend.requests.length === 2, 5000, 'the second request');
  t.equal(backend.accepted, 2, 'the second check started only after the first ended');
  await until(() => backend.sockets.size === 1, 5000, 'the timed-out connection to close');
  await rig.step(1000);
  t.same(rig.transitions, [{ id: 'slow', up: false, reason: '2 consecutive failures: timed out after 1000ms waiting for the HTTP status line' }]);
});

t.test('monitor: remove() stops checking at once, even mid-check', async (t) => {
  const backend = await httpServer(t, () => {});
  const rig = monitorRig(t);
  rig.monitor.add('gone', { ip: loopback, port: backend.port }, config({ type: 'http', jitter: 0 }), 'up');
  t.throws(() => rig.monitor.add('gone', { ip: loopback, port: backend.port }, config({ type: 'tcp' })), { code: 'LB4_DUPLICATE_BACKEND' });
  rig.clock.advance(500);
  await until(() => backend.requests.length === 1, 5000, 'the check to start');
  t.equal(rig.monitor.remove('gone'), true);
  t.equal(rig.monitor.remove('gone'), false);
  t.equal(rig.clock.pending, 0, 'no timer left');
  t.equal(rig.monitor.status('gone'), undefined);
  t.equal(rig.monitor.size, 0);
  await until(() => backend.sockets.size === 0, 5000, 'the abandoned check to close its connection');
  rig.clock.advance(60_000);
  t.equal(backend.accepted, 1, 'no check after remove()');
  t.same(rig.results, [], 'the abandoned check reported nothing');
  t.throws(() => rig.monitor.update('gone', { ip: loopback, port: 1 }, config({ type: 'tcp' })), { code: 'LB4_UNKNOWN_BACKEND' });
});

t.test('monitor: update() moves the checks and restarts the count; markDown() needs rise passes', async (t) => {
  const a = await server(t, () => {});
  const b = await server(t, () => {});
  const rig = monitorRig(t, () => 0);
  const cfg = config({ type: 'tcp', jitter: 0, rise: 2 });
  rig.monitor.add('x', { ip: loopback, port: await refusingPort() }, cfg, 'up');
  await rig.step(0);
  t.match(rig.monitor.status('x'), { up: true, consecutive: 1 });
  rig.monitor.update('x', { ip: loopback, port: a.port }, cfg);
  t.match(rig.monitor.status('x'), { up: true, consecutive: 0 }, 'the count restarts');
  await rig.step(0);
  t.equal(a.accepted, 1);
  rig.monitor.update('x', { ip: loopback, port: a.port }, validateHealthConfig({ ...cfg }, 'h'));
  t.equal(rig.clock.pending, 1, 'an equal config changes nothing');
  rig.monitor.update('x', { ip: loopback, port: b.port }, cfg);
  await rig.step(0);
  t.equal(b.accepted, 1);

  rig.monitor.markDown('x');
  t.same(rig.monitor.status('x'), { up: false, consecutive: 0, lastResult: rig.results[2].result });
  t.same(rig.transitions, [], 'markDown() emits nothing: its caller reports the change');
  await rig.step(1000);
  t.same(rig.transitions, []);
  await rig.step(1000);
  t.same(rig.transitions, [{ id: 'x', up: true, reason: '2 consecutive passes: connected' }]);
});

t.test('monitor: first checks spread over the first interval, then one per interval each', async (t) => {
  // A seeded generator, so the spread is random but the test repeatable; the draws are kept to
  // know which first checks fall in the first half of the interval.
  let seed = 42;
  const draws: number[] = [];
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    draws.push(seed / 2 ** 31);
    return seed / 2 ** 31;
  };
  const clock = new FakeClock();
  const monitor = new HealthMonitor({ clock, random });
  t.teardown(() => monitor.close());
  let results = 0;
  monitor.on('result', () => results++);
  const port = await refusingPort();
  const targets = 200;
  // No jitter, so that each target's second check comes exactly one interval after its first.
  const cfg = config({ type: 'tcp', interval: 1000, timeout: 500, jitter: 0 });
  for (let i = 0; i < targets; i++) monitor.add(`t${i}`, { ip: loopback, port }, cfg, 'up');
  // Wake-ups are on a grid of 5 % of the interval: 50 ms.
  const dueInHalf = draws.filter((r) => Math.ceil((clock.time + r * 1000) / 50) * 50 <= clock.time + 500).length;
  t.ok(dueInHalf > 60 && dueInHalf < 140, `${dueInHalf} of ${targets} first checks fall in the first half interval`);
  t.equal(clock.pending, 1, 'one timer for all targets');
  clock.advance(500);
  await until(() => results === dueInHalf, 5000, `${dueInHalf} results`);
  clock.advance(500);
  await until(() => results === targets, 5000, 'every target checked once');
  clock.advance(1000);
  await until(() => results === 2 * targets, 5000, 'every target checked twice');
  t.equal(monitor.size, targets);
});

t.test('monitor: reused connections carry nothing over between checks, and leak no listeners', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  // Answers alternate between good and bad. A good answer is followed by more "+PONG"s the
  // check never reads: if any reached the next check, its bad answer would pass.
  let n = 0;
  const backend = await server(t, (s) => {
    s.once('data', () => {
      if (n++ % 2 === 1) {
        s.end('-ERR busy\r\n');
        return;
      }
      s.write('+PONG\r\n');
      for (let i = 1; i <= 3; i++) later(() => !s.destroyed && s.write('+PONG\r\n'), i * 5);
    });
  });
  const rig = monitorRig(t);
  const cfg = config({ type: 'send-expect', send: 'PING\r\n', expect: '+PONG', interval: 1000, timeout: 500, jitter: 0, fall: 100 });
  rig.monitor.add('r', { ip: loopback, port: backend.port }, cfg, 'up');
  await rig.step(500);
  for (let i = 1; i < 30; i++) await rig.step(1000);
  t.same(
    rig.results.map((r) => r.result.reason),
    rig.results.map((_, i) => (i % 2 === 0 ? 'got "+PONG"' : 'banner mismatch: got "-ERR busy\\r\\n" expected "+PONG"')),
    'each check sees only its own connection',
  );
  t.equal(rig.results.length, 30);
  t.equal(backend.accepted, 30);
  t.same(warnings, [], 'no MaxListenersExceededWarning, nor any other warning');
  await until(() => backend.sockets.size === 0, 5000, 'every connection to close');
});

t.test('monitor: real timers are unref()d; close() abandons checks and closes sockets', async (t) => {
  const backend = await httpServer(t, () => {});
  const monitor = new HealthMonitor();
  const timeoutsBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const transitions: HealthTransition[] = [];
  monitor.on('transition', (e) => transitions.push(e));
  const fast = await server(t, () => {});
  monitor.add('fast', { ip: loopback, port: fast.port }, config({ type: 'tcp', interval: 100, timeout: 100, rise: 1 }), 'down');
  monitor.add('hang', { ip: loopback, port: backend.port }, config({ type: 'http', interval: 100, timeout: 100 }), 'up');
  t.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timeoutsBefore, 'the monitor timer does not keep the process alive');
  await within(once(monitor, 'transition'), 5000, 'the fast target to come up');
  t.same(transitions, [{ id: 'fast', up: true, reason: 'check passed: connected' }]);
  await until(() => backend.requests.length >= 1 && backend.sockets.size === 1, 5000, 'a hanging check in flight');
  let after = 0;
  monitor.on('result', () => after++);
  const closing = monitor.close();
  t.equal(monitor.close(), closing, 'close() is idempotent');
  await within(closing, 5000, 'close()');
  await until(() => backend.sockets.size === 0, 5000, 'the abandoned check to close');
  t.equal(after, 0, 'no result after close()');
  t.throws(() => monitor.add('late', { ip: loopback, port: fast.port }, config({ type: 'tcp' })), { code: 'LB4_CLOSED' });
});

// --- passive health ------------------------------------------------------------------------

t.test('passive health counts consecutive connect failures across reports', async (t) => {
  const c = new ConsecutiveFailures();
  t.equal(c.record(1, { failures: 2, successes: 0, trailingFailures: 2 }), 2);
  t.equal(c.record(1, { failures: 1, successes: 0, trailingFailures: 1 }), 3, 'failures add up across reports');
  t.equal(c.record(1, { failures: 3, successes: 1, trailingFailures: 1 }), 1, 'a success restarts the count');
  t.equal(c.record(1, { failures: 0, successes: 5, trailingFailures: 0 }), 0);
  t.equal(c.record(2, { failures: 1, successes: 0, trailingFailures: 1 }), 1, 'per backend');
  c.reset(2);
  t.equal(c.record(2, { failures: 1, successes: 0, trailingFailures: 1 }), 1);
});
