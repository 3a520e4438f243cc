// Warm UDP sockets (a finished --udp-responses session's socket kept for the same client's next
// query) are descriptors held for later. Under a low descriptor limit they must not take the
// descriptors new sessions need: each worker keeps at most an eighth of its share warm, and a
// shortage closes the warm ones. Before that cap, 1,024 per worker regardless of `ulimit -n`,
// clients past the limit got no answer at all.

import t from 'tap';
import { buildDist, killChildren, startCli } from '../helpers/cli.js';
import { UdpClient, udpBackend, namedEcho } from '../helpers/datagrams.js';

t.teardown(killChildren);

t.test('more fixed-port clients than the descriptor limit all get answers', async (t) => {
  await buildDist();
  const fdLimit = 256;
  const clients = 400;
  const dns = await udpBackend(namedEcho('b'));
  t.teardown(() => dns.close());
  const { cli, portOf } = await startCli(
    ['--listen', '127.0.0.1:0/udp', '--backend', dns.address, '--udp-responses', '1', '--workers', '2', '--udp-idle-timeout', '1m'],
    { fdLimit },
  );
  t.teardown(() => cli.signal('SIGKILL'));
  const port = Object.values(portOf)[0]!;

  let answered = 0;
  const open: UdpClient[] = [];
  t.teardown(() => Promise.all(open.map((c) => c.close())));
  for (let i = 0; i < clients; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, clients - i) }, () => UdpClient.open()));
    open.push(...batch);
    const replies = await Promise.all(batch.map((c, j) => c.ask(`q${i + j}`, port, '127.0.0.1', 10_000).catch(() => null)));
    answered += replies.filter((r, j) => r?.toString() === `b:q${i + j}`).length;
  }
  t.equal(answered, clients, `all ${clients} clients answered under ulimit -n ${fdLimit}`);

  const again = await UdpClient.open();
  open.push(again);
  t.equal((await again.ask('late comer', port, '127.0.0.1', 10_000)).toString(), 'b:late comer', 'a new client after them is answered too');
});
