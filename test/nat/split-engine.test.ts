// The split engine without a kernel: a fake engine holds the listeners, a fake nft and a fake
// conntrack stand for the kernel. What a NAT listener sends where, and how its counters and
// conntrack entries come back through the engine's verbs.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { counterNames, NativeAlgorithm, NativeBackendState, NativeProtocol, type NativeBackend, type NativeListenerOptions } from '../../lib/engine/native-types.js';
import { silentLogger } from '../../lib/log.js';
import { NatDriver } from '../../lib/nat/nat-driver.js';
import { SplitEngine } from '../../lib/nat/split-engine.js';
import { FakeEngines } from '../helpers/fake-engine.js';
import { fakeTools } from '../helpers/fake-tools.js';

const { file, script } = fakeTools(t, 'lb4-split-');
// nft: `-f -` keeps the file it was given; `-j list counters` answers from counters.json.
const nft = script('nft', `if [ "$1" = "-f" ]; then cat > ${file('applied.nft')}; exit 0; fi\nif [ "$1" = "-j" ]; then cat ${file('counters.json')}; exit 0; fi\nexit 0`);
// conntrack: -L answers from entries.txt; -D records its arguments and says how many it deleted.
const conntrack = script('conntrack', `if [ "$1" = "-L" ]; then cat ${file('entries.txt')}; exit 0; fi\necho "$@" >> ${file('deleted.args')}\necho "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted." >&2`);

const listener = (name: string, port: number, nat: boolean): NativeListenerOptions => ({
  name, protocol: NativeProtocol.tcp, ip: '0.0.0.0', port, dualStack: false, freeBind: false, backlog: 511, algorithm: NativeAlgorithm.roundrobin, proxyProtocol: 0, acceptProxy: [],
  ...(nat ? { nat: { snat: 'none' as const } } : {}),
});
const backend = (key: number, ip: string, weight = 1): NativeBackend => ({ key, id: `x/${ip}`, ip, port: 8080, weight, state: NativeBackendState.up });

t.test('a NAT listener is held by the engine with no backends; its table becomes rules', async (t) => {
  writeFileSync(file('counters.json'), JSON.stringify({ nftables: [{ counter: { name: 'flows_1', packets: 3, bytes: 180 } }, { counter: { name: 'to_backend_1', packets: 9, bytes: 5000 } }] }));
  writeFileSync(file('entries.txt'), [
    'ipv4     2 tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.1 sport=40000 dport=80 src=10.20.0.12 dst=10.10.0.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1 id=42',
    'ipv4     2 tcp      6 100 TIME_WAIT src=10.10.0.2 dst=10.10.0.1 sport=40001 dport=80 src=10.20.0.12 dst=10.10.0.2 sport=8080 dport=40001 [ASSURED] mark=0 use=1 id=43',
    'ipv4     2 tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.1 sport=40002 dport=80 src=10.99.0.1 dst=10.10.0.2 sport=80 dport=40002 [ASSURED] mark=0 use=1 id=44',
  ].join('\n'));
  const fakes = new FakeEngines();
  const listeners = [listener('proxied', 81, false), listener('natted', 80, true)];
  const inner = fakes.create({ workers: 1, listeners, connectTimeoutMs: 1, idleTimeoutMs: 1, retries: 0, pipeSize: 0, maxIdlePipes: 0, udpIdleTimeoutMs: 1, udpResponses: 0, udpMaxSessions: 1, udpMaxDatagram: 512, hashKey: 0, proxyHeaderTimeoutMs: 5000, udpProxyHeader: 0, sniTimeoutMs: 5000 });
  const driver = new NatDriver({ table: 'lb4', log: silentLogger(), nft, conntrack, skipHostCheck: true });
  const engine = new SplitEngine(inner, driver, listeners);
  const bound = engine.start([[backend(0, '127.0.0.1')], [backend(1, '10.20.0.11'), backend(2, '10.20.0.12', 2)]]);
  t.ok(Array.isArray(bound));
  t.same(fakes.engine.tables.map((tb) => tb.map((b) => b.key)), [[0], []], 'the engine runs the proxy table and an empty one for the NAT listener');
  const applied = readFileSync(file('applied.nft'), 'utf8');
  t.match(applied, 'dnat ip to 10.20.0.11:8080');
  t.match(applied, 'numgen inc mod 3 vmap { 0 : goto backend_1_1, 1-2 : goto backend_1_2 }');

  // Counters: the NAT backend's block holds the nftables counters, the same on every read.
  const width = counterNames.length;
  const read = () => {
    const into = new Float64Array(engine.readStats(new Float64Array(0)));
    engine.readStats(into);
    const at = (key: number, name: string) => into[(2 + key) * width + counterNames.indexOf(name as (typeof counterNames)[number])];
    return { flows: at(1, 'flows_total'), bytes: at(1, 'bytes_to_backend'), listenerFlows: into[1 * width + counterNames.indexOf('flows_total')] };
  };
  t.same(read(), { flows: 3, bytes: 5000, listenerFlows: 3 });
  const into = new Float64Array(engine.readStats(new Float64Array(0)));
  engine.readStats(into);
  engine.readStats(into);
  t.equal(into[(2 + 1) * width + counterNames.indexOf('flows_total')], 3, 'a second read into the same array does not add again');

  // A NAT slot's change goes to the rules, not to the engine.
  const before = fakes.engine.calls.length;
  await engine.applyBackends(1, [backend(1, '10.20.0.11', 0), backend(2, '10.20.0.12')]);
  t.equal(fakes.engine.calls.length, before, 'the engine saw no call');
  t.notMatch(readFileSync(file('applied.nft'), 'utf8'), 'goto backend_1_1', 'weight 0 leaves the map');
  await engine.applyBackends(0, [backend(0, '127.0.0.1', 3)]);
  t.same(fakes.engine.tables[0].map((b) => b.weight), [3], 'a proxy slot still reaches the engine');

  // Connections: the conntrack entry that reached a backend, not the ended one or a stranger's.
  const flows = await engine.connections({ listener: 1 });
  t.match(flows, [{ id: 42, forward: 'nat', listener: 1, backendKey: 2, client: '10.10.0.2:40000', backend: '10.20.0.12:8080', state: 'established', worker: -1 }]);
  t.equal(flows.length, 1);

  // A drain timeout on a NAT backend deletes its conntrack entries.
  t.equal(await engine.closeFlows({ backendKey: 2 }), 1);
  t.match(readFileSync(file('deleted.args'), 'utf8'), '-D -f ipv4 -p tcp --orig-port-dst 80 --reply-src 10.20.0.12 --reply-port-src 8080');

  await engine.close(0);
  t.equal(readFileSync(file('applied.nft'), 'utf8'), 'add table inet lb4\ndelete table inet lb4\n', 'close removes the table');
  t.ok(existsSync(file('applied.nft')));
});

t.test('the Maglev pick gets the table the builder makes, over the backends of the listener\'s family', async (t) => {
  const seen: Array<[string[], number[]]> = [];
  const driver = new NatDriver({ table: 'lb4', log: silentLogger(), nft, conntrack, skipHostCheck: true, maglev: (ids, weights) => (seen.push([ids, weights]), [1, 0, 1]) });
  const down = { ...backend(3, '10.0.0.3', 5), state: NativeBackendState.draining };
  driver.setListener(0, { name: 'web', protocol: 'tcp', ip: '10.10.0.1', port: 80, snat: 'none', algorithm: NativeAlgorithm.maglev }, [backend(1, '10.0.0.1', 2), backend(2, 'fd00::1'), down]);
  const [rules] = driver.rules();
  t.same(rules.backends.map((b) => b.key), [1, 3], 'an IPv4 listener keeps its IPv4 backends');
  t.same(seen, [[['x/10.0.0.1', 'x/10.0.0.3'], [2, 0]]], 'a draining backend has weight 0 in the table');
  t.match(rules.picks, [{ family: 'ipv4', kind: 'maglev', table: [1, 0, 1] }]);
});
