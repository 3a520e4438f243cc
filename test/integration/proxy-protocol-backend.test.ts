// A backend's own PROXY protocol setting (`proxyProtocol` on a backend object, `,proxyProtocol=V`
// on the command line) over its listener's, with real sockets: each backend records the header it
// got (or none) and the payload behind it; a reload changes one backend's setting for the flows
// that connect after it; and the setting is refused where no stream of lb4's carries it.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { startBalancer, type BalancerOptions } from '../../lib/index.js';
import { recordingBackend } from '../helpers/proxy-header.js';
import { readAll, sha256 } from '../helpers/sockets.js';

/** One flow through `port` carrying `payload`; resolves with the client's port once it closed. */
async function flow(port: number, payload: Buffer): Promise<number> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let clientPort = 0;
  socket.on('connect', () => (clientPort = socket.localPort!));
  const reading = readAll(socket);
  socket.end(payload);
  const { data } = await reading;
  if (data.toString() !== 'ok') throw new Error(`the backend answered ${JSON.stringify(data.toString())}`);
  return clientPort;
}

t.test("a backend's proxyProtocol overrides its listener's, and a reload changes it for new flows", async (t) => {
  const [v2, none, inherit] = await Promise.all([recordingBackend(), recordingBackend(), recordingBackend()]);
  t.teardown(() => Promise.all([v2.close(), none.close(), inherit.close()]));
  const options = (noneSetting: 'none' | 'v2'): BalancerOptions => ({
    listen: '127.0.0.1:0',
    proxyProtocol: 'v1',
    backends: [
      { address: v2.address, id: 'v2', proxyProtocol: 'v2' },
      { address: none.address, id: 'none', proxyProtocol: noneSetting },
      `${inherit.address},id=inherit`,
    ],
    workers: 1,
  });
  const lb = await startBalancer(options('none'));
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const port = lb.address().port;
  t.same(lb.backends().map((b) => [b.id, b.proxyProtocol]), [['v2', 'v2'], ['none', 'none'], ['inherit', undefined]]);

  // Round robin over three equal backends: one flow each.
  const payload = randomBytes(20_000);
  const clientPorts = [];
  for (let i = 0; i < 3; i++) clientPorts.push(await flow(port, payload));
  const [a, b, c] = await Promise.all([v2.next(), none.next(), inherit.next()]);
  t.match(a.header, { version: 2, family: 'TCP4', source: '127.0.0.1', destination: '127.0.0.1', destinationPort: port });
  t.ok(clientPorts.includes(a.header?.sourcePort ?? -1), 'the v2 header names the client');
  t.equal(b.header, null, "proxyProtocol: none sends no header on a v1 listener");
  t.match(c.header, { version: 1, family: 'TCP4', destinationPort: port }, "a backend without its own setting takes the listener's");
  for (const r of [a, b, c]) t.equal(sha256(r.payload), sha256(payload), 'the payload follows intact');

  // The file now gives the second backend v2: changed in place, new flows get it.
  const summary = await lb.reload(options('v2'));
  t.same(summary.backendsChanged, ['127.0.0.1:0/none']);
  t.same([summary.backendsAdded, summary.backendsRemoved], [[], []], 'the backend stays (its open flows with it)');
  for (let i = 0; i < 3; i++) await flow(port, payload);
  const after = await none.next();
  t.match(after.header, { version: 2, family: 'TCP4' }, 'after the reload the backend gets v2');
  t.equal(sha256(after.payload), sha256(payload));
});

t.test("a backend's proxyProtocol is checked, and refused where lb4 carries no stream", async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,proxyProtocol=v2', '127.0.0.1:10'] });
  t.same(config.listeners[0].backends.map((b) => b.proxyProtocol), ['v2', undefined]);
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:9', proxyProtocol: 'v3' as never }] }), { field: 'backends[0].proxyProtocol', message: /v1, v2/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9,proxyProtocol=v1'] }), { field: 'backends', message: /UDP takes v2/ });
  await t.rejects(validateOptions({ listeners: [{ listen: '127.0.0.1:0', forward: 'nat', backends: [{ address: '127.0.0.1:9', proxyProtocol: 'v2' }] }] }), { field: 'listeners[0].backends', message: /forward: proxy/ });
  // `none`, and v2, on a UDP listener ask for nothing it cannot do.
  t.ok(await validateOptions({ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9,proxyProtocol=none', '127.0.0.1:10,proxyProtocol=v2'] }));
});
