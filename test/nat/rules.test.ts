// The NAT data plane without a kernel: the rule set against golden text, the nft runner against a
// fake nft, conntrack's output parsed, the host check, and the forward/snat/natTable options.

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { parseConntrack } from '../../lib/nat/conntrack.js';
import { parseDestroyEvent } from '../../lib/nat/conntrack-events.js';
import { NftRunner } from '../../lib/nat/nft.js';
import { hasNetAdmin } from '../../lib/nat/preflight.js';
import { renderRemoval, renderRuleset, type NatListenerRules } from '../../lib/nat/render.js';

const golden = (name: string) => readFileSync(new URL(`../fixtures/nat/${name}`, import.meta.url), 'utf8');

const b1 = { key: 3, ip: '10.0.0.1', port: 8080, weight: 2 };
const b2 = { key: 4, ip: '10.0.0.2', port: 8080, weight: 1 };
const drained = { key: 7, ip: '10.0.0.3', port: 8080, weight: 0 };
const b6 = { key: 5, ip: 'fd00::1', port: 53, weight: 1 };
const listeners: NatListenerRules[] = [
  { slot: 0, name: 'web', protocol: 'tcp', ip: null, port: 80, snat: 'masquerade', backends: [b1, b2, drained], picks: [{ family: 'ipv4', kind: 'roundrobin', backends: [b1, b2, drained] }] },
  { slot: 1, name: 'dns', protocol: 'udp', ip: 'fd00::9', port: 53, snat: 'none', backends: [b6], picks: [{ family: 'ipv6', kind: 'maglev', backends: [b6], table: [0, 0, 0, 0, 0] }] },
];

t.test('the rule set renders as the golden file: one transaction that replaces the table', async (t) => {
  t.equal(renderRuleset('lb4', listeners), golden('ruleset.nft'));
  t.equal(renderRemoval('lb4'), 'add table inet lb4\ndelete table inet lb4\n');
});

t.test('a listener family with no backend taking new connections gets no rule', async (t) => {
  const text = renderRuleset('lb4', [{ ...listeners[0], picks: [{ family: 'ipv4', kind: 'roundrobin', backends: [drained] }] }]);
  t.notMatch(text, /jump pick_0_v4/);
  t.notMatch(text, /numgen/);
  // Its connections still count and masquerade: established ones keep flowing.
  t.match(text, /ct reply ip saddr 10\.0\.0\.3 ct reply proto-src 8080 masquerade/);
  t.match(text, /10\.0\.0\.3 \. 8080 : "to_backend_7"/);
});

t.test('counting is one rule per family, protocol and listener shape, however many listeners', async (t) => {
  const many: NatListenerRules[] = Array.from({ length: 40 }, (_, i) => {
    const b = { key: 100 + i, ip: `10.1.0.${i + 1}`, port: 8080, weight: 1 };
    return { slot: i, name: `l${i}`, protocol: 'tcp', ip: '192.0.2.1', port: 1000 + i, snat: 'none', backends: [b], picks: [{ family: 'ipv4', kind: 'roundrobin', backends: [b] }] };
  });
  const lines = renderRuleset('lb4', many).split('\n');
  const start = lines.indexOf('  chain count {') + 1;
  const count = lines.slice(start, lines.indexOf('  }', start));
  t.equal(count.length, 1, 'one rule for both directions');
  t.match(count[0], /original \. 192\.0\.2\.1 \. 1039 \. 10\.1\.0\.40 \. 8080 : "to_backend_139"/);
  t.match(count[0], /reply \. 192\.0\.2\.1 \. 1039 \. 10\.1\.0\.40 \. 8080 : "to_client_139"/);
  // A draining entry and its successor on one address: one map key (nft refuses a duplicate).
  const twice = renderRuleset('lb4', [{ ...listeners[0], backends: [b1, { ...b1, key: 9 }] }]);
  t.equal(twice.match(/80 \. 10\.0\.0\.1 \. 8080 :/g)?.length, 2, 'the address once per direction');
  t.notMatch(twice, /: "to_backend_9"/);
});

t.test('counting keys compare addresses, not their spelling: one address written two ways is one key', async (t) => {
  const lower = { key: 1, ip: 'fd00::1', port: 53, weight: 1 };
  const respelled = [{ key: 2, ip: 'FD00::1', port: 53, weight: 1 }, { key: 3, ip: 'fd00:0:0::1', port: 53, weight: 1 }];
  const text = renderRuleset('lb4', [{ ...listeners[1], ip: 'FD00::9', backends: [lower, ...respelled] }]);
  t.equal(text.match(/fd00::9 \. 53 \. fd00::1 \. 53 :/g)?.length, 2, 'the address once per direction, in its canonical form');
  t.notMatch(text, /: "to_backend_[23]"/);
});

t.test('maglev: every table entry becomes a map element pointing at its backend chain', async (t) => {
  const two = [b1, b2];
  const text = renderRuleset('lb4', [{ ...listeners[0], picks: [{ family: 'ipv4', kind: 'maglev', backends: two, table: [1, 0, 1] }] }]);
  t.match(text, 'jhash ip saddr mod 3 vmap { 0 : goto backend_0_4, 1 : goto backend_0_3, 2 : goto backend_0_4 }');
});

t.test('the nft runner: the file goes to nft -f - on stdin; a refusal is one line and an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-fake-nft-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fake = join(dir, 'nft');
  const seen = join(dir, 'seen');
  // Records its arguments and stdin; refuses any file that mentions "bad", as nft does, on stderr.
  writeFileSync(fake, `#!/bin/sh\necho "$@" > ${seen}.args\ncat > ${seen}\nif grep -q bad ${seen}; then echo "/dev/stdin:2:1-3: Error: syntax error, unexpected bad" >&2; exit 1; fi\n`);
  chmodSync(fake, 0o755);
  const runner = new NftRunner(fake);
  await runner.apply('table inet lb4 {\n}\n');
  t.equal(readFileSync(seen, 'utf8'), 'table inet lb4 {\n}\n');
  t.equal(readFileSync(`${seen}.args`, 'utf8').trim(), '-f -');
  await t.rejects(runner.apply('table inet lb4 {\nbad\n}\n'), { code: 'LB4_NAT_RULES', message: /nothing was changed.*syntax error, unexpected bad/ });
  t.throws(() => runner.applySync('bad'), { code: 'LB4_NAT_RULES', message: /syntax error/ });
  t.throws(() => new NftRunner(join(dir, 'missing')).applySync('x'), { code: 'LB4_NAT_RULES', message: /cannot run/ });
  t.same([...runner.counters('lb4')], [], 'no counters from output that is not nft JSON');
});

t.test("conntrack's extended output parses into entries; other lines are skipped", async (t) => {
  const text = [
    'ipv4     2 tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.1 sport=43648 dport=80 packets=5 bytes=300 src=10.20.0.12 dst=10.10.0.2 sport=8080 dport=43648 packets=4 bytes=900 [ASSURED] mark=0 use=1 id=1696514104',
    'ipv6     10 udp      17 29 src=fd00::2 dst=fd00::9 sport=5353 dport=53 [UNREPLIED] src=fd00::1 dst=fd00::2 sport=53 dport=5353 mark=0 use=1 id=7',
    'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.',
  ].join('\n');
  const [tcp, udp, ...rest] = parseConntrack(text);
  t.same(rest, []);
  t.match(tcp, { family: 'ipv4', protocol: 'tcp', state: 'ESTABLISHED', client: { ip: '10.10.0.2', port: 43648 }, listener: { ip: '10.10.0.1', port: 80 }, backend: { ip: '10.20.0.12', port: 8080 }, bytesToBackend: 300, bytesToClient: 900, id: 1696514104, replied: true });
  t.match(udp, { family: 'ipv6', protocol: 'udp', state: '', backend: { ip: 'fd00::1', port: 53 }, bytesToBackend: 0, replied: false });
});

t.test('a conntrack DESTROY event parses into the ended entry and its lifetime', async (t) => {
  const line = ' [DESTROY] ipv4     2 tcp      6 src=10.10.0.2 dst=10.10.0.1 sport=40000 dport=80 packets=9 bytes=70000 src=10.20.0.11 dst=10.20.0.1 sport=8080 dport=40000 packets=8 bytes=69000 [ASSURED] mark=0 delta-time=3 use=1 id=9';
  t.match(parseDestroyEvent(line), { entry: { protocol: 'tcp', client: { ip: '10.10.0.2' }, backend: { ip: '10.20.0.11', port: 8080 }, bytesToBackend: 70000, bytesToClient: 69000, id: 9 }, durationMs: 3000 });
  t.equal(parseDestroyEvent(line.replace(' delta-time=3', ''))?.durationMs, undefined, 'no timestamps: no lifetime');
  t.equal(parseDestroyEvent(' [NEW] ipv4 2 tcp 6 120 SYN_SENT src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1'), undefined, 'other events are not ends');
});

t.test('CAP_NET_ADMIN is read from the effective capability set', async (t) => {
  t.equal(hasNetAdmin('Name:\tx\nCapEff:\t000001ffffffffff\n'), true);
  t.equal(hasNetAdmin('CapEff:\t0000000000000000\n'), false);
  t.equal(hasNetAdmin('CapEff:\t0000000000001000\n'), true, 'bit 12 alone');
});

t.test('options: forward, snat and natTable, per listener and at the top', async (t) => {
  const c = await validateOptions({ listen: ':80', backends: ['127.0.0.1:9001'], forward: 'nat', snat: 'masquerade', natTable: 'lb4_web' });
  t.match(c.listeners[0], { forward: 'nat', snat: 'masquerade' });
  t.equal(c.natTable, 'lb4_web');
  const d = await validateOptions({ listen: ':80', backends: ['127.0.0.1:9001'] });
  t.match(d.listeners[0], { forward: 'proxy', snat: 'none' });
  t.equal(d.natTable, 'lb4');
  const full = await validateOptions({ listeners: [{ listen: ':80', forward: 'nat', backends: ['127.0.0.1:9001'] }, { listen: ':81', backends: ['127.0.0.1:9001'] }] });
  t.same(full.listeners.map((l) => l.forward), ['nat', 'proxy']);
  await t.rejects(validateOptions({ listen: ':80', backends: ['127.0.0.1:9001'], forward: 'kernel' }), { code: 'LB4_INVALID_OPTION', field: 'forward' });
  await t.rejects(validateOptions({ listeners: [{ listen: ':80', snat: 'yes' as never, backends: ['127.0.0.1:9001'] }] }), { code: 'LB4_INVALID_OPTION', field: 'listeners[0].snat' });
  await t.rejects(validateOptions({ listen: ':80', backends: ['127.0.0.1:9001'], natTable: 'lb4; flush ruleset' }), { code: 'LB4_INVALID_OPTION', field: 'natTable' });
  await t.rejects(validateOptions({ listen: ':80', backends: ['127.0.0.1:9001'], forward: 'nat', algorithm: 'leastconn' }), { field: 'algorithm', message: /leastconn needs forward: proxy/ });
});

t.test('a one-address listener beside an every-address one: its return looks up a named set with its type spelled out', async (t) => {
  // nft 1.0.6 lists an anonymous `ct original ip daddr . ct original proto-dst { ... }` with the
  // port left out of every element: a listing that does not load again (nat.test.ts loads it).
  const one = { ...listeners[0], slot: 2, ip: '192.0.2.1', snat: 'none' as const };
  const text = renderRuleset('lb4', [listeners[0], one]);
  t.match(text, /  set one_address_ipv4_tcp \{\n    type ipv4_addr \. inet_service\n    elements = \{ 192\.0\.2\.1 \. 80 \}\n  \}/);
  t.match(text, /ct original ip daddr \. ct original proto-dst @one_address_ipv4_tcp return/);
  t.notMatch(text, /proto-dst \{/, 'no anonymous set keyed by the listener');
});
