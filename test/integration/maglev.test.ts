// Maglev consistent hashing through the real data plane: a client (by its IP address) keeps its
// backend across connections and workers, two balancers with the same backends listed in another
// order choose alike (as the two nodes of a pair must), and a backend that goes away moves only
// its own clients. Clients take distinct source addresses in 127.0.0.0/8 (loopback accepts any).

import net from 'node:net';
import t, { type Test } from 'tap';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { nameBackend, readAll, within, type TestBackend } from '../helpers/sockets.js';
import { once } from 'node:events';

const clients = Array.from({ length: 60 }, (_, i) => `127.0.${1 + Math.floor(i / 50)}.${10 + (i % 50)}`);

async function answerFrom(port: number, localAddress: string): Promise<string> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  await within(once(socket, 'connect'), 10_000, `connect from ${localAddress}`);
  const { data } = await readAll(socket);
  return data.toString().trim();
}

async function choices(lb: Balancer): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const client of clients) out.set(client, await answerFrom(lb.address().port, client));
  return out;
}

async function backends(t: Test, names: string[]): Promise<TestBackend[]> {
  const started = await Promise.all(names.map(nameBackend));
  t.teardown(() => Promise.all(started.map((b) => b.close())));
  return started;
}

t.test('a client keeps its backend; the same backends in another order choose alike', async (t) => {
  const [a, b, c] = await backends(t, ['a', 'b', 'c']);
  const one = await startBalancer({ listeners: [{ name: 'web', listen: '127.0.0.1:0', algorithm: 'maglev', backends: [a.address, b.address, c.address] }], workers: 2 });
  t.teardown(() => one.close({ drainTimeout: 0 }));
  const two = await startBalancer({ listeners: [{ name: 'web', listen: '127.0.0.1:0', algorithm: 'maglev', backends: [c.address, a.address, b.address] }], workers: 1 });
  t.teardown(() => two.close({ drainTimeout: 0 }));

  const first = await choices(one);
  const again = await choices(one);
  t.same([...again], [...first], 'every client lands where it landed before (two workers, new connections)');
  const spread: Record<string, number> = {};
  for (const name of first.values()) spread[name] = (spread[name] ?? 0) + 1;
  t.same(Object.keys(spread).sort(), ['a', 'b', 'c'], `clients spread over every backend: ${JSON.stringify(spread)}`);
  t.same([...(await choices(two))], [...first], 'another balancer, backends in another order: the same choice for every client');
});

t.test('a backend going away moves its own clients and few others, and they come back with it', async (t) => {
  const [a, b, c] = await backends(t, ['a', 'b', 'c']);
  // Configured ids: the table depends on them, not on the backends' (random) ports.
  const ids = [
    { address: a.address, id: 'a' },
    { address: b.address, id: 'b' },
    { address: c.address, id: 'c' },
  ];
  const lb = await startBalancer({ listen: '127.0.0.1:0', algorithm: 'maglev', backends: ids, workers: 1 });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const before = await choices(lb);
  await lb.setBackendState('b', 'maintenance');
  const during = await choices(lb);
  let othersMoved = 0;
  for (const client of clients) {
    if (before.get(client) === 'b') t.not(during.get(client), 'b', `${client} left b`);
    else if (during.get(client) !== before.get(client)) othersMoved++;
  }
  // Maglev moves a few per cent of the other backends' keys when the set changes (the native
  // test measures 0.2 % for 1 of 10); with 60 clients that is rarely one, never many.
  const others = clients.filter((c) => before.get(c) !== 'b').length;
  t.ok(othersMoved <= Math.ceil(others * 0.1), `${othersMoved} of ${others} clients of a and c moved`);
  await lb.setBackendState('b', 'up');
  t.same([...(await choices(lb))], [...before], 'b back: every client where it was (the same table)');
});

t.test('hash key: with address-port the ports of one address spread over backends; with address they never do', async (t) => {
  const { UdpClient, namedEcho, udpBackend } = await import('../helpers/datagrams.js');
  const [a, b, c] = await backends(t, ['a', 'b', 'c']);
  const udp = await Promise.all(['a', 'b', 'c'].map((n) => udpBackend(namedEcho(n))));
  t.teardown(() => Promise.all(udp.map((u) => u.close())));
  const start = (hashKey: 'address' | 'address-port') =>
    startBalancer({
      listeners: [
        { name: 'tcp', listen: '127.0.0.1:0', backends: [a.address, b.address, c.address] },
        { name: 'udp', listen: '127.0.0.1:0/udp', backends: udp.map((u) => u.address) },
      ],
      algorithm: 'maglev',
      hashKey,
      workers: 2,
    });
  // 24 new connections and 24 new client sockets, all from 127.0.0.1, each from its own port.
  const picks = async (lb: Balancer) => {
    const [tcpPort, udpPort] = [lb.addresses()[0].port, lb.addresses()[1].port];
    const tcp: string[] = [];
    const datagrams: string[] = [];
    for (let i = 0; i < 24; i++) {
      tcp.push(await answerFrom(tcpPort, '127.0.0.1'));
      const client = await UdpClient.open('127.0.0.1');
      datagrams.push(String(await client.ask('q', udpPort)).split(':')[0]);
      await client.close();
    }
    return { tcp: new Set(tcp), udp: new Set(datagrams) };
  };

  const byAddress = await start('address');
  t.teardown(() => byAddress.close({ drainTimeout: 0 }));
  const one = await picks(byAddress);
  t.equal(one.tcp.size, 1, `address: every TCP flow of 127.0.0.1 on one backend (${[...one.tcp]})`);
  t.equal(one.udp.size, 1, `address: every UDP session of 127.0.0.1 on one backend (${[...one.udp]})`);

  const byPort = await start('address-port');
  t.teardown(() => byPort.close({ drainTimeout: 0 }));
  t.equal(byPort.config.hashKey, 'address-port');
  const many = await picks(byPort);
  // With the port in the hash, 24 flows all on one of three equal backends has odds of 3^-23.
  t.ok(many.tcp.size >= 2, `address-port: TCP flows of one address on ${many.tcp.size} backends (${[...many.tcp]})`);
  t.ok(many.udp.size >= 2, `address-port: UDP sessions of one address on ${many.udp.size} backends (${[...many.udp]})`);
});

t.test('hash key: a bad value is refused, naming the field', async (t) => {
  await t.rejects(startBalancer({ listen: '127.0.0.1:0', backends: ['127.0.0.1:1'], algorithm: 'maglev', hashKey: 'port' }), {
    code: 'LB4_INVALID_OPTION',
    message: /^hashKey: must be one of address, address-port/,
  });
});
