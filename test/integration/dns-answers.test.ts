// What lb4 takes from a DNS answer, against a DNS server that gives what real ones will not
// (test/helpers/hostile-dns.ts): a cap on the backends and SRV targets of one entry, with the rest
// counted once per change of answer; addresses no flow can go to, SRV port 0 and lb4's own
// listeners dropped and counted; an SRV target of "." taken as "no service", never looked up.

import t, { type Test } from 'tap';
import { startBalancer, type Balancer, type BalancerOptions } from '../../lib/index.js';
import { startHostileDns, type HostileDns, type HostileName } from '../helpers/hostile-dns.js';
import { nameBackend, until, whoAnswers, within } from '../helpers/sockets.js';

// TTLs of 1 s clamped to 300 ms: several resolutions a second.
const timing = { dnsInterval: '300ms', dnsMinInterval: '50ms', dnsTimeout: '500ms' };

async function dnsFor(t: Test, zone: Record<string, HostileName>): Promise<HostileDns> {
  const dns = await startHostileDns(zone);
  dns.ttl = 1;
  t.teardown(() => dns.close());
  return dns;
}

async function balancer(t: Test, dns: HostileDns, options: BalancerOptions): Promise<Balancer> {
  const lb = await startBalancer({ dnsServers: [dns.server], workers: 1, admin: { listen: '127.0.0.1:0' }, ...timing, ...options });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  return lb;
}

async function dropped(lb: Balancer, reason: string): Promise<number> {
  const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
  const found = new RegExp(`^lb4_dns_records_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics);
  return found ? Number(found[1]) : NaN;
}

/** Resolves after `n` more resolutions of `entry` with result ok. */
function resolutions(lb: Balancer, entry: string, n: number): Promise<void> {
  const seen = new Promise<void>((resolve) => {
    let left = n;
    const on = (info: { entry: string; result: string }) => {
      if (info.entry !== entry || info.result !== 'ok' || --left > 0) return;
      lb.off('dns-resolution', on);
      resolve();
    };
    lb.on('dns-resolution', on);
  });
  return within(seen, 15_000, `${n} resolutions of ${entry}`);
}

const portOf = (lb: Balancer, listener: string) => lb.addresses().find((a) => a.name === listener)?.port ?? 0;

const addressesIn = (count: number, prefix: string) => Array.from({ length: count }, (_, i) => `${prefix}.${i >> 8}.${i & 255}`);

t.test('an entry takes at most maxBackends addresses (default 64), the first in order, and counts the rest once per answer', async (t) => {
  const many = addressesIn(200, '127.1');
  const dns = await dnsFor(t, { 'many.t': { A: many } });
  const lb = await balancer(t, dns, { listeners: [{ name: 'default', listen: '127.0.0.1:0', backends: ['dns:many.t:9'] }, { name: 'capped', listen: '127.0.0.1:0', backends: ['dns:many.t:10,maxBackends=5'] }] });
  const ips = (listener: string) => lb.backends({ listener }).map((b) => b.ip).sort();
  t.same(ips('default'), [...many].sort().slice(0, 64), 'the first 64 addresses in order');
  t.same(ips('capped'), [...many].sort().slice(0, 5), "the entry's own maxBackends");
  t.equal(await dropped(lb, 'limit'), 136 + 195, 'the cut-off records are counted');

  // The same answer again and again: counted once, nothing changes.
  await resolutions(lb, 'dns:many.t:10', 3);
  t.equal(await dropped(lb, 'limit'), 136 + 195, 'an unchanged answer is not counted again');
  t.equal(ips('default').length, 64);

  // A new answer is counted again.
  dns.zone = { 'many.t': { A: [...many, '127.0.0.9'] } };
  await until(async () => (await dropped(lb, 'limit')) === 136 + 195 + 137 + 196, 15_000, 'the changed answer to be counted');
  // The address the new one pushed out is held for one more answer (a vanished address drains
  // only when the next answer lacks it too), then goes.
  const wanted = [...many, '127.0.0.9'].sort().slice(0, 64);
  await until(() => JSON.stringify(ips('default')) === JSON.stringify(wanted), 15_000, 'the pushed-out address to go after the next answer');
  t.same(ips('default'), wanted, 'the new first address is in');
  t.same(lb.stats().dnsRecordsDropped, { unusable: 0, self: 0, limit: 136 + 195 + 137 + 196 }, 'stats() has the same counts');
});

t.test('an SRV name with 300 targets: only maxBackends targets are looked up; a target of "." is no service', async (t) => {
  const backend = await nameBackend('real');
  t.teardown(() => backend.close());
  const zone: Record<string, HostileName> = { '_many._tcp.t': { SRV: Array.from({ length: 300 }, (_, i) => ({ priority: 1, weight: 1, port: backend.port, target: `t${i}.t` })) } };
  for (let i = 0; i < 300; i++) zone[`t${i}.t`] = { A: [`127.0.0.1`] };
  zone['_none._tcp.t'] = { SRV: [{ priority: 1, weight: 1, port: backend.port, target: '.' }] };
  const dns = await dnsFor(t, zone);
  const lb = await balancer(t, dns, { listeners: [{ name: 'many', listen: '127.0.0.1:0', backends: ['srv:_many._tcp.t'] }, { name: 'none', listen: '127.0.0.1:0', backends: [backend.address, 'srv:_none._tcp.t'] }] });
  t.same(lb.backends({ listener: 'many' }).map((b) => [b.ip, b.port]), [['127.0.0.1', backend.port]], 'one address and port from many targets');
  await resolutions(lb, 'srv:_many._tcp.t', 2);
  const looked = new Set(dns.queries.filter((q) => /^A t\d+\.t$/.test(q)).map((q) => q.slice(2)));
  const first64 = Array.from({ length: 300 }, (_, i) => `t${i}.t`).sort().slice(0, 64);
  t.same([...looked].sort(), first64, 'the first 64 targets by name, and no other, were looked up');
  t.equal(await dropped(lb, 'limit'), 236, 'the targets past the cap are counted');

  // "." is not a name to look up: an empty answer, the static backend alone serves.
  t.notOk(dns.queries.some((q) => q === 'A ' || q === 'AAAA '), 'the root name was never queried');
  t.ok((lb.stats().dnsResolutions?.empty ?? 0) >= 1, 'counted as an empty answer');
  t.same(lb.backends({ listener: 'none' }).map((b) => b.id), [backend.address]);
  t.equal(await whoAnswers(portOf(lb, 'none')), 'real');
});

t.test('addresses no flow can go to, SRV port 0, and lb4 itself are dropped and counted', async (t) => {
  const backend = await nameBackend('real');
  t.teardown(() => backend.close());
  const bad4 = ['0.0.0.0', '255.255.255.255', '224.0.0.1', '239.1.2.3'];
  const bad6 = ['::', 'ff02::1', 'fe80::1'];
  const dns = await dnsFor(t, {
    'app.t': { A: [...bad4, '127.0.0.1'], AAAA: bad6 },
    '_app._tcp.t': { SRV: [{ priority: 1, weight: 1, port: 0, target: 'real.t' }, { priority: 1, weight: 1, port: backend.port, target: 'real.t' }] },
    'real.t': { A: ['127.0.0.1'] },
    'lb.t': { A: ['127.0.0.1'] },
    'other-lo.t': { A: ['127.0.0.7'] },
  });
  const lb = await balancer(t, dns, {
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: [`dns:app.t:${backend.port}`, 'srv:_app._tcp.t'] },
      { name: 'self', listen: '127.0.0.1:0', backends: [backend.address, 'srv:_self._tcp.t'] },
      { name: 'any', listen: ':0', backends: [backend.address] },
    ],
  });
  t.same(lb.backends({ listener: 'web' }).map((b) => `${b.ip}:${b.port}`), [`127.0.0.1:${backend.port}`, `127.0.0.1:${backend.port}`], 'only the usable address, once per entry');
  t.equal(await dropped(lb, 'unusable'), bad4.length + bad6.length + 1, 'every unusable address and the port 0 record counted');
  t.ok(lb.backends().every((b) => b.port !== 0 && !bad4.includes(b.ip) && !bad6.includes(b.ip)));

  // An SRV answer that names lb4's own listeners: the one on 127.0.0.1, and the wildcard one
  // through another loopback address.
  const self = portOf(lb, 'self');
  const any = portOf(lb, 'any');
  dns.zone['_self._tcp.t'] = {
    SRV: [
      { priority: 1, weight: 1, port: self, target: 'lb.t' },
      { priority: 1, weight: 1, port: any, target: 'other-lo.t' },
      { priority: 1, weight: 1, port: backend.port, target: 'real.t' },
    ],
  };
  await until(async () => (await dropped(lb, 'self')) === 2, 15_000, 'both records naming lb4 to be dropped');
  await until(() => lb.backends({ listener: 'self' }).length === 2, 15_000, 'the usable target to be added');
  t.same(lb.backends({ listener: 'self' }).map((b) => `${b.ip}:${b.port}`).sort(), [backend.address, `127.0.0.1:${backend.port}`].sort(), 'lb4 itself is never a backend');
  for (let i = 0; i < 4; i++) t.equal(await whoAnswers(self), 'real');
});

t.test('maxBackends is checked like any field', async (t) => {
  const { validateOptions } = await import('../../lib/config/validate.js');
  const entry = async (backend: unknown) => (await validateOptions({ listen: '127.0.0.1:0', backends: [backend as string] })).listeners[0].discover[0];
  t.equal((await entry('dns:app.t:80')).maxBackends, 64, 'default 64');
  t.equal((await entry('srv:_a._tcp.t,maxBackends=300')).maxBackends, 300);
  t.equal((await entry({ dns: 'app.t', port: 80, maxBackends: 2 })).maxBackends, 2);
  for (const [backend, field] of [
    [{ dns: 'app.t', port: 80, maxBackends: 0 }, 'backends[0].maxBackends'],
    [{ srv: '_a._tcp.t', maxBackends: 10_001 }, 'backends[0].maxBackends'],
    ['dns:app.t:80,maxBackends=many', 'backends[0]'],
  ] as const) {
    await t.rejects(entry(backend), { code: 'LB4_INVALID_OPTION', field }, JSON.stringify(backend));
  }
});

t.test('an answer of more than 256 records still has a TTL (node:dns gives none past the 256th)', async (t) => {
  const { Resolver } = await import('node:dns/promises');
  const { resolveDnsEntry } = await import('../../lib/discovery/dns-resolve.js');
  const { validateDnsEntry } = await import('../../lib/config/dns-entry.js');
  const dns = await startHostileDns({ 'big.t': { A: addressesIn(300, '127.3') } });
  t.teardown(() => dns.close());
  dns.ttl = 7;
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dns.server]);
  const answer = await resolveDnsEntry(resolver, validateDnsEntry('dns:big.t:80', 'backends[0]'));
  t.match(answer, { result: 'ok', ttlMs: 7000 }, 'the TTL of the records that have one, not NaN');
  t.equal(answer.result === 'ok' ? answer.targets.length : 0, 64);
});
