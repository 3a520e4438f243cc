// The kernel NAT data plane end to end, in network namespaces this test makes (topology.ts): lb4
// runs `forward: nat` listeners in the lb node's namespace, clients and backends are separate
// hosts. Root only (namespaces, nftables); CI runs it as root, never skipped there.

import t from 'tap';
import { addon } from '../../lib/engine/addon.js';
import { buildDist } from '../helpers/cli.js';
import { deleteOrphans, isRoot, makeNamespaces, notRootMessage } from '../helpers/netns.js';
import { until } from '../helpers/sockets.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConntrack } from '../../lib/nat/conntrack.js';
import { NftRunner } from '../../lib/nat/nft.js';
import { renderRuleset, type NatListenerRules, type NatPick } from '../../lib/nat/render.js';
import { backendIps, backendIps6, clientIp, clientIp6, vip6, hasTable, launchLb, listingRefusal, lbInside, makeTopology, peer, run, shaExchanges, startBackends, startLb, vip, type JsonChild, type Topology } from './topology.js';

const b1 = `${backendIps.b1}:8080`;
const b2 = `${backendIps.b2}:8080`;

const count = (results: Array<{ name: string }>, name: string) => results.filter((r) => r.name === name).length;

async function closeLb(lb: JsonChild): Promise<void> {
  lb.send({ op: 'close' });
  await lb.next('closed');
  await lb.exited;
}

async function table(topo: Topology): Promise<string> {
  return run(topo.lb, ['nft', 'list', 'table', 'inet', 'lb4']);
}

if (!isRoot) {
  t.comment(`test/nat/nat.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();
  await buildDist();

  t.test('TCP through NAT: bytes intact both ways, weights followed, client address kept; stop removes the table', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, `${b2},weight=2`], forward: 'nat', workers: 1 });
    t.ok(await hasTable(topo.lb), 'lb4 made its table');
    const results = await shaExchanges(t, topo.client, 30, 1 << 20, 1 << 20);
    t.equal(results.filter((r) => r.ok).length, 30, 'every exchange: SHA-256 equal both ways (1 MiB each way)');
    // numgen inc walks the weights' cycle exactly: 1 in 3 to b1, 2 in 3 to b2.
    t.equal(count(results, 'b1'), 10);
    t.equal(count(results, 'b2'), 20);
    t.ok(results.every((r) => r.remote === clientIp), 'backends see the client address (lb4 is their gateway)');
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    const s1 = stats.backends.find((b) => b.id === b1)!.counters;
    t.equal(s1.flows_total, 10, 'new connections counted per backend');
    // IP bytes: the payload plus headers and the other side's ACKs (a few %), counted once.
    t.ok(s1.bytes_to_backend > 10 * (1 << 20) && s1.bytes_to_client > 10 * (1 << 20), 'bytes counted each way per backend');
    t.ok(s1.bytes_to_backend < 1.1 * 10 * (1 << 20) && s1.bytes_to_client < 1.1 * 10 * (1 << 20), `bytes counted once (${s1.bytes_to_backend}, ${s1.bytes_to_client})`);
    // A weight set through the API changes the map; a reload changes it again, and the counters
    // carried over the table's replacements only grow.
    lb.send({ op: 'weight', id: b1, weight: 0 });
    await lb.next('backends');
    t.equal(count(await shaExchanges(t, topo.client, 6), 'b2'), 6, 'weight 0: every new connection to b2');
    lb.send({ op: 'reload', options: { listen: ':80', backends: [`${b1},weight=2`, `${b2},weight=3`], forward: 'nat', workers: 1 } });
    await lb.next('reloaded');
    const after = await shaExchanges(t, topo.client, 10);
    t.same([count(after, 'b1'), count(after, 'b2')], [4, 6], 'after the reload, 2:3');
    lb.send({ op: 'stats' });
    const later = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    t.equal(later.backends.find((b) => b.id === b1)!.counters.flows_total, 14, 'b1: 10 + 4 new connections, across three tables');
    await closeLb(lb);
    t.notOk(await hasTable(topo.lb), 'stop removed the table');
  });

  t.test('maglev: one client keeps its backend, and the nftables map is the engine\'s Maglev table', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, `${b2},weight=3`], forward: 'nat', algorithm: 'maglev', workers: 1 });
    const results = await shaExchanges(t, topo.client, 12);
    t.equal(results.filter((r) => r.ok).length, 12);
    t.equal(new Set(results.map((r) => r.name)).size, 1, 'every connection of the client reached one backend');
    // The map in the kernel, entry by entry, against the addon's table for the same backends.
    const json = JSON.parse(await run(topo.lb, ['nft', '-j', 'list', 'chain', 'inet', 'lb4', 'pick_0_v4'])) as { nftables: unknown[] };
    const entries = new Map<number, string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) {
        if (v.length === 2 && typeof v[0] === 'number' && (v[1] as { goto?: { target: string } })?.goto) entries.set(v[0], (v[1] as { goto: { target: string } }).goto.target);
        else v.forEach(walk);
      } else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(json.nftables);
    const expected = addon().maglevTable([`:80/${b1}`, `:80/${b2}`], [1, 3]);
    t.equal(entries.size, expected.length, `the map has every entry of the table (${expected.length})`);
    lb.send({ op: 'backends' });
    const backends = await lb.next<Array<{ id: string; key?: number }>>('backends');
    t.equal(backends.length, 2);
    // Backend chains are named backend_<slot>_<key>, keys in config order from 0 here.
    const chainOf = ['backend_0_0', 'backend_0_1'];
    let same = 0;
    for (let i = 0; i < expected.length; i++) if (entries.get(i) === chainOf[expected[i]]) same++;
    t.equal(same, expected.length, 'every entry points at the backend the engine\'s table names');
    await closeLb(lb);
  });

  t.test('health: a killed backend leaves the map, and new clients are served by the other', async (t) => {
    const topo = await makeTopology(t);
    const backends = await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, {
      listen: ':80', backends: [b1, b2], forward: 'nat', workers: 1, health: { type: 'tcp', interval: '200ms', timeout: '200ms', rise: 1, fall: 1 },
    });
    backends.b1.child.kill('SIGKILL');
    await backends.b1.exited;
    await until(async () => {
      lb.send({ op: 'backends' });
      const list = await lb.next<Array<{ id: string; health: string }>>('backends');
      return list.find((b) => b.id === b1)?.health === 'down';
    }, 20_000, 'health to mark b1 down');
    const results = await shaExchanges(t, topo.client, 8);
    t.equal(results.filter((r) => r.ok && r.name === 'b2').length, 8, 'every new client served by b2');
    await closeLb(lb);
  });

  t.test('drain: an established connection keeps flowing; after the drain timeout its conntrack entry is deleted', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, b2], forward: 'nat', workers: 1 });
    const held = peer(t, topo.client, ['hold', vip, '80']);
    const { name } = await held.next<{ name: 'b1' | 'b2' }>('held');
    const drained = name === 'b1' ? b1 : b2;
    const other = name === 'b1' ? 'b2' : 'b1';
    lb.send({ op: 'connections' });
    const before = await lb.next<Array<{ backend: string; forward?: string; client: string; protocol: string }>>('connections');
    t.match(before, [{ backend: drained, forward: 'nat', protocol: 'tcp', client: new RegExp(`^${clientIp.replace(/\./g, '\\.')}:`) }], 'connections() lists the conntrack entry');
    lb.send({ op: 'state', id: drained, state: 'draining', drainTimeout: '3s' });
    await lb.next('backends');
    held.send('still-there');
    t.equal(await held.next('echo'), 'still-there', 'the drained backend still answers the established connection');
    const results = await shaExchanges(t, topo.client, 6);
    t.equal(results.filter((r) => r.ok && r.name === other).length, 6, 'new connections go to the other backend');
    await until(async () => {
      lb.send({ op: 'connections' });
      const now = await lb.next<Array<{ backend: string }>>('connections');
      return !now.some((c) => c.backend === drained);
    }, 30_000, 'the drain timeout to delete the conntrack entry');
    t.pass('the drained backend\'s connection left conntrack');
    await closeLb(lb);
  });

  t.test('UDP: request/response through NAT, balanced, client address kept', async (t) => {
    const topo = await makeTopology(t);
    const servers = [peer(t, topo.b1, ['udp-server', '5353', 'b1']), peer(t, topo.b2, ['udp-server', '5353', 'b2'])];
    await Promise.all(servers.map((s) => s.next('listening')));
    const lb = await startLb(t, topo.lb, { listen: ':53/udp', backends: [`${backendIps.b1}:5353`, `${backendIps.b2}:5353`], forward: 'nat', workers: 1 });
    const c = peer(t, topo.client, ['udp', vip, '53', '10']);
    const answers = await c.next<Array<string | null>>('answers');
    t.equal(answers.filter((a) => a === `b1 ${clientIp}`).length, 5);
    t.equal(answers.filter((a) => a === `b2 ${clientIp}`).length, 5);
    await closeLb(lb);
  });

  t.test('masquerade: backends with no route to the client answer lb4\'s address; the access log comes from conntrack', async (t) => {
    const topo = await makeTopology(t);
    for (const ns of [topo.b1, topo.b2]) await ns.ip('route', 'del', 'default');
    await startBackends(t, topo);
    // Conntrack in this namespace counts bytes, keeps timestamps and forgets a closed TCP
    // connection after 1 s (not 120): its end, the access log's event, comes soon.
    for (const sysctl of ['net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_timestamp=1', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1']) {
      await run(topo.lb, ['sysctl', '-qw', sysctl]);
    }
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, b2], forward: 'nat', snat: 'masquerade', workers: 1, accessLog: true });
    const results = await shaExchanges(t, topo.client, 6, 1 << 16, 1 << 16);
    t.equal(results.filter((r) => r.ok).length, 6);
    t.ok(results.every((r) => r.remote === lbInside), 'backends see lb4\'s address');
    // The kernel reaps expired entries (and sends their DESTROY events) from a garbage collector
    // that may wait up to a minute on an idle table; a conntrack listing reaps the expired ones
    // it walks past at once, so the test lists the table while it waits.
    const reaping = setInterval(() => void run(topo.lb, ['conntrack', '-L']).catch(() => {}), 1000);
    const flow = await lb.next<{ listener: string; client: string; backend: string; bytesToBackend: number; bytesToClient: number; protocol: string }>('flow', 60_000).finally(() => clearInterval(reaping));
    t.match(flow, { listener: ':80', protocol: 'tcp', client: new RegExp(`^${clientIp.replace(/\./g, '\\.')}:\\d+$`) }, 'the access log has the ended connection');
    t.ok(flow.backend === b1 || flow.backend === b2, 'with its backend');
    t.ok(flow.bytesToBackend > 1 << 16 && flow.bytesToClient > 1 << 16, 'and the bytes each way (conntrack accounting on)');
    await closeLb(lb);
  });

  t.test('a client on the lb4 host itself is served (the output chain); the port stays held by lb4', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, b2], forward: 'nat', workers: 1 });
    const c = peer(t, topo.lb, ['sha', vip, '80', '4096', '4096', '4']);
    const results = await c.next<Array<{ ok: boolean; name: string }>>('results');
    t.equal(results.filter((r) => r.ok).length, 4);
    await t.rejects(
      run(topo.lb, ['node', '-e', "require('net').createServer().listen(80).on('error', (e) => { console.error(e.code); process.exit(3) })"]),
      /EADDRINUSE/,
      'another program cannot take the listener\'s port',
    );
    await closeLb(lb);
  });

  t.test('a client and a backend both on the lb4 host: served, and each byte counted once', async (t) => {
    const topo = await makeTopology(t);
    const local = peer(t, topo.lb, ['server', '9090', 'local']);
    await local.next('listening');
    const lb = await startLb(t, topo.lb, { listen: ':81', backends: ['127.0.0.1:9090'], forward: 'nat', workers: 1 });
    const payload = 4 * 65536;
    const c = peer(t, topo.lb, ['sha', '127.0.0.1', '81', '65536', '65536', '4']);
    const results = await c.next<Array<{ ok: boolean; name: string }>>('results');
    t.equal(results.filter((r) => r.ok && r.name === 'local').length, 4, 'SHA-256 equal both ways, through the output chain to a local backend');
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    const s = stats.backends[0].counters;
    // Each packet passes filter output and then filter input over lo, addressed to the backend
    // both times: counted in output only.
    t.ok(s.bytes_to_backend > payload && s.bytes_to_backend < 1.5 * payload, `bytes to the backend counted once (${s.bytes_to_backend} for ${payload} of payload)`);
    t.ok(s.bytes_to_client > payload && s.bytes_to_client < 1.5 * payload, `bytes to the client counted once (${s.bytes_to_client})`);
    await closeLb(lb);
  });

  t.test('SIGKILL leaves the table; a restart replaces it, serves, and its stop removes it', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const options = { listen: ':80', backends: [b1, b2], forward: 'nat', workers: 1 };
    const first = await startLb(t, topo.lb, options);
    t.equal((await shaExchanges(t, topo.client, 2)).filter((r) => r.ok).length, 2);
    first.child.kill('SIGKILL');
    await first.exited;
    t.ok(await hasTable(topo.lb), 'a crash cannot remove the table');
    const second = await startLb(t, topo.lb, options);
    t.match(await table(topo), /counter flows_0 \{\s+packets 0 bytes 0/, 'the restart put a fresh table in place of the stale one');
    t.equal((await shaExchanges(t, topo.client, 2)).filter((r) => r.ok).length, 2);
    await closeLb(second);
    t.notOk(await hasTable(topo.lb), 'nothing left after the stop');
  });

  t.test('a rule set the kernel refuses changes nothing: the running table stays whole', async (t) => {
    const topo = await makeTopology(t);
    const dir = mkdtempSync(join(tmpdir(), 'lb4-nft-in-ns-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const nft = join(dir, 'nft');
    writeFileSync(nft, `#!/bin/sh\nexec ip netns exec ${topo.lb.name} nft "$@"\n`);
    chmodSync(nft, 0o755);
    const runner = new NftRunner(nft);
    const good = { key: 0, ip: backendIps.b1, port: 8080, weight: 1 };
    const listener = { slot: 0, name: 'web', protocol: 'tcp' as const, ip: null, port: 80, snat: 'none' as const, backends: [good], picks: [{ family: 'ipv4' as const, kind: 'roundrobin' as const, backends: [good] }] };
    await runner.apply(renderRuleset('lb4', [listener]));
    const before = await table(topo);
    // The bad backend comes after the table's deletion in the file: a half-applied file would
    // leave no table, or a table without the good backend.
    const bad = { key: 1, ip: '10.20.0.300', port: 8080, weight: 1 };
    await t.rejects(runner.apply(renderRuleset('lb4', [{ ...listener, backends: [good, bad], picks: [{ family: 'ipv4', kind: 'roundrobin', backends: [good, bad] }] }])), { code: 'LB4_NAT_RULES' });
    t.equal(await table(topo), before, 'the table is exactly what it was');
    // And through lb4: a start whose rules cannot apply is one error, and leaves nothing.
    const failed = launchLb(t, topo.lb, { listen: ':80', backends: ['10.20.0.11:8080'], forward: 'nat', workers: 1, natTable: 'lb4_other' }, { natTools: { nft: '/nonexistent/nft' } });
    t.match(await failed.next('error'), /needs the \/nonexistent\/nft command \(Debian package nftables\)/);
    await failed.exited;
    const nocap = launchLb(t, topo.lb, { listen: ':80', backends: ['10.20.0.11:8080'], forward: 'nat', workers: 1, natTable: 'lb4_other' }, { wrap: ['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin'] });
    t.match(await nocap.next('error'), /forward: nat \(:80\) needs root or CAP_NET_ADMIN/);
    await nocap.exited;
    t.notOk(await hasTable(topo.lb, 'lb4_other'), 'no table from the failed starts');
  });

  t.test('IPv6: a listener on an IPv6 address balances to IPv6 backends, client address kept', async (t) => {
    const topo = await makeTopology(t, { ipv6: true });
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: `[${vip6}]:80`, backends: [`[${backendIps6.b1}]:8080`, `[${backendIps6.b2}]:8080`], forward: 'nat', workers: 1 });
    const results = await shaExchanges(t, topo.client, 4, 1 << 16, 1 << 16, vip6);
    t.equal(results.filter((r) => r.ok).length, 4, 'SHA-256 equal both ways');
    t.same([count(results, 'b1'), count(results, 'b2')], [2, 2]);
    t.ok(results.every((r) => r.remote === clientIp6), 'backends see the client address');
    await closeLb(lb);
  });

  t.test('IPv6: one backend address written two ways (a reload that respells it, or both in one list) loads, and its bytes count once', async (t) => {
    const topo = await makeTopology(t, { ipv6: true });
    await startBackends(t, topo);
    const plain = `[${backendIps6.b1}]:8080`;
    const upper = `[${backendIps6.b1.toUpperCase()}]:8080`;
    const padded = `[${backendIps6.b1.replace('::', ':0:0::')}]:8080`;
    // The kernel sees one address in each pair: its counting map would hold one key twice.
    const lb = await startLb(t, topo.lb, { listen: `[${vip6}]:80`, backends: [plain, padded], forward: 'nat', workers: 1 });
    const first = await shaExchanges(t, topo.client, 4, 1 << 16, 1 << 16, vip6);
    t.equal(first.filter((r) => r.ok && r.name === 'b1').length, 4, 'served by b1 under either spelling');
    lb.send({ op: 'stats' });
    const before = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    const bytesOf = (id: string) => before.backends.find((b) => b.id === id)!.counters.bytes_to_backend;
    t.ok(bytesOf(plain) > 4 * (1 << 16), 'the first spelling counts the address\'s bytes');
    t.equal(bytesOf(padded), 0, 'the second does not count them again');
    lb.send({ op: 'reload', options: { listen: `[${vip6}]:80`, backends: [upper], forward: 'nat', workers: 1 } });
    await lb.next('reloaded');
    const after = await shaExchanges(t, topo.client, 2, 1 << 16, 1 << 16, vip6);
    t.equal(after.filter((r) => r.ok && r.name === 'b1').length, 2, 'served after the reload');
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    const up = stats.backends.find((b) => b.id === upper)!.counters;
    t.ok(up.bytes_to_backend > 2 * (1 << 16) && up.bytes_to_client > 2 * (1 << 16), 'the respelled backend counts its bytes each way');
    await closeLb(lb);
  });

  t.test('a listener on one address next to one on every address with the same port: each serves and counts only its own connections', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    // The every-address listener first: its rule must not take the other's clients, and its
    // counters must not count the other's bytes to the backend they share.
    const lb = await startLb(t, topo.lb, { listeners: [{ name: 'every', listen: '[::]:80', backends: [b1] }, { name: 'one', listen: `${vip}:80`, backends: [b1, b2] }], forward: 'nat', workers: 1 });
    const toOne = await shaExchanges(t, topo.client, 4, 1 << 16, 1 << 16, vip);
    t.same([count(toOne, 'b1'), count(toOne, 'b2')], [2, 2], 'the one-address listener serves its address, balancing over its backends');
    const toEvery = await shaExchanges(t, topo.client, 3, 1 << 16, 1 << 16, lbInside);
    t.equal(count(toEvery, 'b1'), 3, 'the every-address listener serves the host\'s other addresses');
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; listener: string; counters: Record<string, number> }> }>('stats');
    const of = (listener: string) => stats.backends.find((b) => b.listener === listener && b.id === b1)!.counters;
    t.equal(of('one').flows_total, 2);
    t.equal(of('every').flows_total, 3);
    // 2 and 3 exchanges of 64 KiB each way: each counter holds its own, not the other listener's too.
    for (const [name, n] of [['one', 2], ['every', 3]] as const) {
      const c = of(name);
      t.ok(c.bytes_to_backend > n * (1 << 16) && c.bytes_to_backend < (n + 1) * (1 << 16), `${name}: bytes to b1 are its ${n} exchanges' (${c.bytes_to_backend})`);
      t.ok(c.bytes_to_client > n * (1 << 16) && c.bytes_to_client < (n + 1) * (1 << 16), `${name}: bytes to the client are its ${n} exchanges' (${c.bytes_to_client})`);
    }
    await closeLb(lb);
  });

  t.test('a listener on one address keeps the client address next to a masquerading one on every address with the same port', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listeners: [{ name: 'every', listen: '[::]:80', snat: 'masquerade', backends: [b1] }, { name: 'one', listen: `${vip}:80`, snat: 'none', backends: [b1] }], forward: 'nat', workers: 1 });
    const toOne = await shaExchanges(t, topo.client, 2, 4096, 4096, vip);
    t.ok(toOne.every((r) => r.ok && r.remote === clientIp), `the one-address listener's backend sees the client (${toOne.map((r) => r.remote).join(', ')})`);
    const toEvery = await shaExchanges(t, topo.client, 2, 4096, 4096, lbInside);
    t.ok(toEvery.every((r) => r.ok && r.remote === lbInside), `the every-address listener's backend sees lb4's address (${toEvery.map((r) => r.remote).join(', ')})`);
    // Counting, masquerade and the one-address returns: all of it lists in a form nft loads again.
    t.equal(await listingRefusal(topo.lb), '', 'the listed table loads again');
    await closeLb(lb);
  });

  t.test('every shape of lb4\'s table lists in a form nft loads again: alone, and in the whole rule set', async (t) => {
    const { natlist: ns } = await makeNamespaces(t, 'natlist');
    const family = (ip: string) => (ip.includes(':') ? 'ipv6' as const : 'ipv4' as const);
    let slot = 0;
    // A listener of the rule set's input, its picks made from its backends as the driver does.
    const listener = (protocol: 'tcp' | 'udp', ip: string | null, port: number, snat: 'none' | 'masquerade', kind: 'roundrobin' | 'maglev', backends: Array<[number, string, number, number?]>): NatListenerRules => {
      const all = backends.map(([key, bip, bport, weight = 1]) => ({ key, ip: bip, port: bport, weight }));
      const picks = (['ipv4', 'ipv6'] as const).flatMap((f): NatPick[] => {
        const mine = all.filter((b) => family(b.ip) === f);
        if (mine.length === 0) return [];
        if (kind === 'roundrobin') return [{ family: f, kind, backends: mine }];
        const live = mine.filter((b) => b.weight > 0);
        return [{ family: f, kind, backends: mine, table: Array.from({ length: 7 }, (_, i) => (live.length ? mine.indexOf(live[i % live.length]) : 0)) }];
      });
      return { slot: slot++, name: `l${slot}`, protocol, ip, port, snat, backends: all, picks };
    };
    const shapes: NatListenerRules[] = [
      // Every address, both families, masquerading; UDP beside TCP on the same port.
      listener('tcp', null, 80, 'masquerade', 'roundrobin', [[0, '10.0.0.1', 8080], [1, '10.0.0.2', 8080, 0], [2, 'fd00::1', 8080]]),
      listener('udp', null, 80, 'masquerade', 'roundrobin', [[3, '10.0.0.1', 8053], [4, 'fd00::1', 8053]]),
      // One address beside every address on the same port, each family, masquerade on one side only.
      listener('tcp', '192.0.2.1', 80, 'none', 'roundrobin', [[5, '10.0.0.1', 8080], [6, '10.0.0.3', 8080]]),
      listener('tcp', '2001:db8::1', 80, 'masquerade', 'roundrobin', [[7, 'fd00::2', 8080]]),
      // No backend taking new connections: the accept that keeps its clients from the twin.
      listener('udp', '192.0.2.1', 80, 'none', 'roundrobin', [[8, '10.0.0.4', 8053, 0]]),
      // Maglev in both families, masquerading, with a weight-0 backend; an old and a new entry on one address.
      listener('tcp', null, 443, 'masquerade', 'maglev', [[9, '10.0.0.1', 8443], [10, '10.0.0.2', 8443, 0], [11, 'fd00::1', 8443]]),
      listener('udp', '2001:db8::1', 53, 'masquerade', 'maglev', [[12, 'fd00::5', 53, 0], [13, 'fd00::5', 53]]),
    ];
    const dir = mkdtempSync(join(tmpdir(), 'lb4-shapes-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'rules.nft'), renderRuleset('lb4', shapes));
    await run(ns, ['nft', '-f', join(dir, 'rules.nft')]);
    t.equal(await listingRefusal(ns), '', 'the listed table loads again');
    t.equal(await listingRefusal(ns, 'lb4', 'ruleset'), '', 'the listed rule set loads again');
  });

  t.test('bytes each way equal conntrack\'s own accounting, per listener and backend: routed, local and hairpin clients, masquerade beside a one-address listener', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    // Conntrack counts each packet once, where it first sees it (prerouting or output): the
    // truth lb4's filter-hook counters must equal, byte for byte.
    await run(topo.lb, ['sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1']);
    const lb = await startLb(t, topo.lb, { listeners: [{ name: 'every', listen: '[::]:80', snat: 'masquerade', backends: [b1, b2] }, { name: 'one', listen: `${vip}:80`, backends: [b1] }], forward: 'nat', workers: 1 });
    const served = [
      ...(await shaExchanges(t, topo.client, 3, 50_000, 70_000, vip)),
      ...(await shaExchanges(t, topo.client, 4, 30_000, 90_000, lbInside)),
      // A client on the lb4 host (the output chain), and a backend that is a client of the
      // masquerading listener and is sent to itself or to the other backend (hairpin).
      ...(await shaExchanges(t, topo.lb, 2, 20_000, 10_000, vip)),
      ...(await shaExchanges(t, topo.b1, 4, 40_000, 20_000, lbInside)),
    ];
    t.equal(served.filter((r) => r.ok).length, 13, 'every exchange intact');
    const expected = new Map<string, { toBackend: number; toClient: number }>();
    for (const e of parseConntrack(await run(topo.lb, ['conntrack', '-L', '-f', 'ipv4', '-o', 'extended']))) {
      if (e.listener.port !== 80) continue;
      const id = `${e.listener.ip === vip ? 'one' : 'every'} ${e.backend.ip}:${e.backend.port}`;
      const sum = expected.get(id) ?? { toBackend: 0, toClient: 0 };
      expected.set(id, { toBackend: sum.toBackend + e.bytesToBackend, toClient: sum.toClient + e.bytesToClient });
    }
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; listener: string; counters: Record<string, number> }> }>('stats');
    const counted = new Map(stats.backends.map((b) => [`${b.listener} ${b.id}`, { toBackend: b.counters.bytes_to_backend, toClient: b.counters.bytes_to_client }]));
    t.same(Object.fromEntries(counted), Object.fromEntries([...counted.keys()].map((id) => [id, expected.get(id) ?? { toBackend: 0, toClient: 0 }])), 'lb4\'s bytes are conntrack\'s');
    t.ok([...expected.keys()].every((id) => counted.has(id)), `every connection belongs to one of lb4's backends (${[...expected.keys()].join(', ')})`);
    await closeLb(lb);
  });

  t.test('a one-address listener with no backend taking new connections does not hand its clients to an every-address listener with the same port', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listeners: [{ name: 'every', listen: '[::]:80', backends: [b2] }, { name: 'one', listen: `${vip}:80`, backends: [`${b1},weight=0`] }], forward: 'nat', workers: 1 });
    const toOne = await shaExchanges(t, topo.client, 2, 4096, 4096, vip);
    t.equal(count(toOne, 'b2'), 0, `no client of the one-address listener reaches the other listener's backend (${JSON.stringify(toOne)})`);
    const toEvery = await shaExchanges(t, topo.client, 2, 4096, 4096, lbInside);
    t.equal(count(toEvery, 'b2'), 2, 'the every-address listener still serves the other addresses');
    await closeLb(lb);
  });

  t.test('lb4 start --config: the file\'s natTable names the table (the flag\'s default does not replace it)', async (t) => {
    const topo = await makeTopology(t);
    const dir = mkdtempSync(join(tmpdir(), 'lb4-nat-config-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'lb4.json');
    writeFileSync(file, JSON.stringify({ listen: ':80', backends: [b1], forward: 'nat', workers: 1, natTable: 'lb4_from_file' }));
    const cli = fileURLToPath(new URL('../../dist/bin/lb4.js', import.meta.url));
    const child = spawn('ip', ['netns', 'exec', topo.lb.name, process.execPath, cli, 'start', '--config', file, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
    await until(async () => child.exitCode !== null || (await hasTable(topo.lb, 'lb4_from_file')) || (await hasTable(topo.lb)), 20_000, 'lb4 to make its table');
    t.ok(await hasTable(topo.lb, 'lb4_from_file'), `the table the file names (${stderr.trim()})`);
    t.notOk(await hasTable(topo.lb), 'no table under the default name');
    child.kill('SIGTERM');
    await exited;
    t.notOk(await hasTable(topo.lb, 'lb4_from_file'), 'the stop removed it');
  });
}
