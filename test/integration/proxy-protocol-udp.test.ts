// PROXY protocol v2 on UDP sessions, with real sockets: a UDP backend parses the header lb4 puts
// in front of a session's datagram (test/helpers/proxy-header.ts, written apart from lb4's C++
// writer) and answers with what it found; by default only a session's first datagram carries
// it, with --udp-proxy-header every each one does; a backend's own setting works on UDP too.
// HAProxy 2.6 has no UDP proxying, so it cannot be the peer here; the test backend is.

import t, { type Test } from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { startBalancer, type BalancerOptions } from '../../lib/index.js';
import { buildDist, runCli } from '../helpers/cli.js';
import { udpBackend, UdpClient } from '../helpers/datagrams.js';
import { parseHeader } from '../helpers/proxy-header.js';

/** A backend that answers each datagram with the header it carried (or null) and its payload. */
function headerReader() {
  return udpBackend((msg) => {
    const header = parseHeader(msg);
    return Buffer.from(JSON.stringify({ header, payload: msg.subarray(header?.length ?? 0).toString() }));
  });
}

async function start(t: Test, options: Partial<BalancerOptions>, backends: BalancerOptions['backends']) {
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends, workers: 1, ...options });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  const ask = async (payload: string) => JSON.parse((await client.ask(payload, lb.address().port)).toString());
  return { lb, client, ask };
}

t.test('v2 on the first datagram of each UDP session, naming the client and the listener', async (t) => {
  const backend = await headerReader();
  t.teardown(() => backend.close());
  const { lb, client, ask } = await start(t, { proxyProtocol: 'v2' }, [backend.address]);
  const first = await ask('one');
  // The unique id TLV carries the session's id, as connections() (and the access log) show it.
  const [session] = await lb.connections();
  const uniqueId = String(session.id);
  const header = { version: 2, family: 'UDP4', source: '127.0.0.1', sourcePort: client.port, destination: '127.0.0.1', destinationPort: lb.address().port, uniqueId, length: 28 + 3 + uniqueId.length };
  t.same(first, { header, payload: 'one' });
  t.same(await ask('two'), { header: null, payload: 'two' }, 'the session goes on without one');
  t.equal(lb.stats().listeners[0].counters.bytes_to_backend, 6, 'the header is not counted as forwarded bytes');
  // Another client is another session: its first datagram carries its own header.
  const other = await UdpClient.open();
  t.teardown(() => other.close());
  const reply = JSON.parse((await other.ask('three', lb.address().port)).toString());
  t.match(reply, { header: { family: 'UDP4', sourcePort: other.port }, payload: 'three' });
});

t.test('--udp-proxy-header every: each datagram carries it; a backend of its own v2 on a plain listener', async (t) => {
  const every = await headerReader();
  t.teardown(() => every.close());
  const { ask } = await start(t, { proxyProtocol: 'v2', udpProxyHeader: 'every' }, [every.address]);
  for (const payload of ['a', 'b', 'c']) t.match(await ask(payload), { header: { version: 2, family: 'UDP4' }, payload });

  const own = await headerReader();
  t.teardown(() => own.close());
  const plain = await start(t, {}, [{ address: own.address, proxyProtocol: 'v2' }]);
  t.match(await plain.ask('x'), { header: { version: 2, family: 'UDP4', sourcePort: plain.client.port }, payload: 'x' });
  t.same(await plain.ask('y'), { header: null, payload: 'y' });
});

t.test('--udp-proxy-header every with no UDP listener sending v2 is refused: it would change nothing', async (t) => {
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], udpProxyHeader: 'every' }), { code: 'LB4_INVALID_OPTION', field: 'udpProxyHeader', message: /no UDP listener sends PROXY protocol v2/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9'], udpProxyHeader: 'every' }), { code: 'LB4_INVALID_OPTION', field: 'udpProxyHeader' });
  const ok = await validateOptions({ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9,proxyProtocol=v2'], udpProxyHeader: 'every' });
  t.equal(ok.udpProxyHeader, 'every', "a backend's own v2 is enough");
  await buildDist();
  const { exit, stderr } = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--udp-proxy-header', 'every']);
  t.equal(exit.code, 2);
  t.match(stderr, /^lb4: --udp-proxy-header: every: no UDP listener sends PROXY protocol v2/);
  t.equal(stderr.trim().split('\n').length, 1, 'one line');
});
