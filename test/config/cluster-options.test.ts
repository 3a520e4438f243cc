// The `cluster` option (HA pair): validation naming the field of each problem (key file missing,
// readable by others, too short; --peer without a key; a bad VIP; priority out of range), the
// defaults from the option table, listeners on a VIP binding with IP_FREEBIND, a reload that
// changes the cluster waiting for a restart, and the CLI flags reaching the same fields. No sockets.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateCluster, describeCluster, isThisHost } from '../../lib/config/cluster-options.js';
import { validateOptions } from '../../lib/config/validate.js';
import { nativeOptions } from '../../lib/engine/open.js';
import { planReload } from '../../lib/reload/plan.js';
import { describeFailure } from '../../bin/cli-error.js';
import { runCli, buildDist, killChildren } from '../helpers/cli.js';
import { within } from '../helpers/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-cluster-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(killChildren);
function keyFile(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}
const good = keyFile('key', `${'ab'.repeat(32)}\n`);
const noEnv = {};
const base = { peer: '203.0.113.2:7000', keyFile: good };

t.test('defaults come from the option table', async (t) => {
  const c = await validateCluster(base, noEnv);
  t.match(c, { nodeId: hostname(), priority: 100, heartbeat: { host: '', port: 7000 }, peer: { host: '203.0.113.2', port: 7000 }, heartbeatIntervalMs: 100, deadAfter: 3, preempt: true, vips: [], onStateChange: null, keyFile: good });
  t.equal(await validateCluster(undefined, noEnv), null, 'no cluster');
  t.notOk(JSON.stringify(c).includes('abab'), 'the validated config holds no secret');
  const full = await validateCluster({ ...base, nodeId: 'lb-a', priority: '200', heartbeat: '127.0.0.1:7001', heartbeatInterval: '50ms', deadAfter: 4, preempt: false, vips: ['192.0.2.10/24,dev=eth9'], onStateChange: '/bin/true' }, noEnv);
  t.match(full, { nodeId: 'lb-a', priority: 200, heartbeat: { host: '127.0.0.1', port: 7001 }, heartbeatIntervalMs: 50, deadAfter: 4, preempt: false, vips: [{ ip: '192.0.2.10', prefix: 24, dev: 'eth9', family: 4 }] });
  t.match(describeCluster(full!), /node lb-a, priority 200, heartbeat 127\.0\.0\.1:7001 -> peer 203\.0\.113\.2:7000 every 50ms, dead after 4; no preempt; key from .*; 192\.0\.2\.10\/24 on eth9/);
  t.match(await validateCluster({ peer: '203.0.113.2:7000' }, { LB4_CLUSTER_KEY: 'cd'.repeat(32) }), { keyFile: null }, 'the key from LB4_CLUSTER_KEY');
});

t.test('every problem names its field', async (t) => {
  const fails = async (raw: unknown, field: string, message: RegExp, env: NodeJS.ProcessEnv = noEnv) => {
    const err = await validateCluster(raw, env).catch((e: unknown) => e);
    t.match(err, { code: /^LB4_INVALID_/, field, message }, `${field}: ${message}`);
  };
  await fails({ peer: '203.0.113.2:7000' }, 'cluster.keyFile', /a cluster needs a shared key/);
  await fails({ ...base, keyFile: join(dir, 'missing') }, 'cluster.keyFile', /does not exist/);
  await fails({ ...base, keyFile: keyFile('open', 'ab'.repeat(32), 0o644) }, 'cluster.keyFile', /mode 644: it must not be readable/);
  await fails({ ...base, keyFile: keyFile('short', 'ab'.repeat(16)) }, 'cluster.keyFile', /too short: 32 hex characters are 16 bytes/);
  await fails({ peer: '203.0.113.2:7000' }, 'LB4_CLUSTER_KEY', /too short/, { LB4_CLUSTER_KEY: 'x'.repeat(10) });
  await fails({ keyFile: good }, 'cluster.peer', /--peer/);
  await fails({ ...base, peer: '127.0.0.2' }, 'cluster.peer', /no port/);
  await fails({ ...base, priority: 0 }, 'cluster.priority', /between 1 and 255, got 0/);
  await fails({ ...base, priority: 256 }, 'cluster.priority', /between 1 and 255, got 256/);
  await fails({ ...base, deadAfter: 0 }, 'cluster.deadAfter', /between 1 and 100/);
  await fails({ ...base, heartbeatInterval: '5ms' }, 'cluster.heartbeatInterval', /between 10ms and 10000ms/);
  await fails({ ...base, vips: ['192.0.2.10'] }, 'cluster.vips[0]', /not ADDR\/PREFIX/);
  await fails({ ...base, vips: ['192.0.2.10/24,dev=eth0', '192.0.2.300/24,dev=eth0'] }, 'cluster.vips[1]', /not a numeric/);
  await fails({ ...base, vips: ['192.0.2.10/33,dev=eth0'] }, 'cluster.vips[0]', /out of range/);
  await fails({ ...base, vips: ['198.51.100.7/24'] }, 'cluster.vips[0]', /cannot tell which interface/);
  await fails({ ...base, vips: ['192.0.2.10/24,dev=eth0', '192.0.2.10/24,dev=eth1'] }, 'cluster.vips[1]', /listed twice/);
  await fails({ ...base, heartbeat: '[::1]:7000' }, 'cluster.heartbeat', /different IP families/);
  // A VIP the host needs for itself: the backup node removes its VIPs, so it would take it away.
  await fails({ ...base, vips: ['127.0.0.1/8,dev=lo'] }, 'cluster.vips[0]', /127\.0\.0\.1 cannot be a virtual IP: it is a loopback address/);
  await fails({ ...base, vips: ['::1/128,dev=lo'] }, 'cluster.vips[0]', /loopback/);
  await fails({ ...base, vips: ['0.0.0.0/24,dev=eth0'] }, 'cluster.vips[0]', /0\.0\.0\.0\/8/);
  await fails({ ...base, vips: ['::/64,dev=eth0'] }, 'cluster.vips[0]', /unspecified/);
  await fails({ ...base, vips: ['224.0.0.18/32,dev=eth0'] }, 'cluster.vips[0]', /multicast/);
  await fails({ ...base, vips: ['ff02::1/128,dev=eth0'] }, 'cluster.vips[0]', /multicast/);
  await fails({ ...base, vips: ['::ffff:127.0.0.1/128,dev=eth0'] }, 'cluster.vips[0]', /loopback/);
  await fails({ ...base, vips: ['255.255.255.255/32,dev=eth0'] }, 'cluster.vips[0]', /broadcast/);
  await fails({ ...base, peer: '192.0.2.3:7000', heartbeat: '192.0.2.2:7000', vips: ['192.0.2.2/24,dev=eth0'] }, 'cluster.vips[0]', /it is the heartbeat address/);
  await fails({ ...base, peer: '192.0.2.3:7000', heartbeat: '192.0.2.2:7000', vips: ['192.0.2.3/24,dev=eth0'] }, 'cluster.vips[0]', /it is the peer address/);
  // A peer that is this node itself, or no single host: the node would hear only its own heartbeats.
  await fails({ ...base, peer: '127.0.0.1:7000', heartbeat: '127.0.0.1:7000' }, 'cluster.peer', /own heartbeat address/);
  // With no heartbeat host (or 0.0.0.0, ::) the socket receives on every address of this host.
  await fails({ ...base, peer: '127.0.0.2:7000' }, 'cluster.peer', /own heartbeat address/);
  await fails({ ...base, peer: '127.0.0.1:7000', heartbeat: '0.0.0.0:7000' }, 'cluster.peer', /own heartbeat address/);
  await fails({ ...base, peer: '[::1]:7000', heartbeat: '[::]:7000' }, 'cluster.peer', /own heartbeat address/);
  const eth = { eth0: [{ address: '192.0.2.7', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: false, cidr: '192.0.2.7/24' }] };
  t.ok(isThisHost('192.0.2.7', eth), "an interface's address is this host");
  t.notOk(isThisHost('192.0.2.8', eth), 'another address in its subnet is not');
  t.ok(isThisHost('127.9.9.9', {}), 'every 127/8 address is this host');
  t.match(await validateCluster({ ...base, peer: '127.0.0.2:7001', heartbeat: ':7000' }, noEnv), { heartbeat: { host: '', port: 7000 } }, 'a loopback peer on another port is another node');
  await fails({ ...base, peer: '0.0.0.0:7000' }, 'cluster.peer', /0\.0\.0\.0 cannot be the peer/);
  await fails({ ...base, peer: '224.0.0.18:7000' }, 'cluster.peer', /multicast/);
  await fails({ ...base, peer: '255.255.255.255:7000' }, 'cluster.peer', /broadcast/);
  t.match(await validateCluster({ ...base, peer: '127.0.0.1:7001', heartbeat: '127.0.0.1:7000' }, noEnv), { peer: { host: '127.0.0.1', port: 7001 } }, 'two nodes on one host: distinct ports');
  await fails({ ...base, preempt: 'maybe' }, 'cluster.preempt', /true or false/);
  await fails({ ...base, colour: 'red' }, 'cluster.colour', /unknown option/);
  await fails('yes', 'cluster', /must be a mapping/);
  t.equal(describeFailure(await validateCluster({ ...base, priority: 0 }, noEnv).catch((e: unknown) => e)).line, 'lb4: --priority: must be between 1 and 255, got 0', 'the CLI names the flag');
  t.equal(describeFailure(await validateCluster({ ...base, vips: ['x'] }, noEnv).catch((e: unknown) => e)).line.split(':')[1], ' --vip', 'and --vip for a VIP');
});

t.test('a listener on a virtual IP binds with IP_FREEBIND; a reload that changes the cluster waits for a restart', async (t) => {
  const options = { listen: ['192.0.2.10:80', '127.0.0.1:0'], backends: ['127.0.0.1:9'], cluster: { ...base, vips: ['192.0.2.10/24,dev=eth0'] } };
  const config = await validateOptions(options);
  t.same(config.listeners.map((l) => l.freeBind), [true, false]);
  t.same(nativeOptions(config, false).listeners.map((l) => l.freeBind), [true, false], 'and the engine is told so');
  const other = await validateOptions({ ...options, cluster: { ...options.cluster, priority: 7 } });
  t.same(planReload(config, other).needsRestart, ['cluster']);
  t.same(planReload(config, await validateOptions(options)).needsRestart, []);
});

t.test('lb4 start flags and lb4 check-config', async (t) => {
  await buildDist();
  const yaml = join(dir, 'pair.yaml');
  writeFileSync(yaml, `listen: 127.0.0.1:0\nbackends: [127.0.0.1:9]\ncluster:\n  nodeId: lb-a\n  peer: 203.0.113.2:7000\n  keyFile: ${good}\n  priority: 150\n  vips: ["192.0.2.10/24,dev=eth0"]\n`);
  const ok = await runCli(['check-config', yaml]);
  t.equal(ok.exit.code, 0, ok.stderr);
  t.match(ok.stdout, /cluster: node lb-a, priority 150, heartbeat :7000 -> peer 203\.0\.113\.2:7000 every 100ms, dead after 3; preempt; key from .*; 192\.0\.2\.10\/24 on eth0/);
  const noKey = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--peer', '203.0.113.2:7000']);
  t.equal(noKey.exit.code, 2);
  t.match(noKey.stderr, /^lb4: --cluster-key-file: a cluster needs a shared key/m);
  const badPriority = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--peer', '203.0.113.2:7000', '--cluster-key-file', good, '--priority', '300']);
  t.match(badPriority.stderr, /^lb4: --priority: must be between 1 and 255, got 300/m);
  const open = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--peer', '203.0.113.2:7000', '--cluster-key-file', keyFile('open2', 'ab'.repeat(32), 0o640)]);
  t.match(open.stderr, /^lb4: --cluster-key-file: cluster key file .* has mode 640/m);
  // A VIP on an interface that does not exist: refused before anything opens or is logged, not
  // a node that wins the election and holds nothing (the peer, on loopback, is never sent to).
  const noDev = await within(
    runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--peer', '127.0.0.1:7000', '--heartbeat', '127.0.0.1:0', '--cluster-key-file', good, '--admin', '0', '--vip', '198.51.100.9/32,dev=lb4rv-nodev0']),
    20_000,
    'lb4 start to refuse a VIP on a missing interface',
  );
  t.equal(noDev.exit.code, 2);
  t.equal(noDev.stderr, 'lb4: --vip: interface lb4rv-nodev0 of virtual IP 198.51.100.9/32 does not exist\n', 'one line naming the flag, nothing logged before it');
  // check-config gives the same verdict as start.
  const noDevFile = join(dir, 'nodev.json');
  writeFileSync(noDevFile, JSON.stringify({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], cluster: { peer: '127.0.0.1:7000', heartbeat: '127.0.0.1:0', keyFile: good, vips: ['198.51.100.9/32,dev=lb4rv-nodev0'] } }));
  const noDevCheck = await runCli(['check-config', noDevFile]);
  t.equal(noDevCheck.exit.code, 2, 'check-config refuses the missing interface too');
  t.match(noDevCheck.stderr, /vip.*interface lb4rv-nodev0 of virtual IP 198\.51\.100\.9\/32 does not exist/);
  const help = await runCli(['start', '--help']);
  for (const flag of ['--node-id', '--priority', '--heartbeat', '--peer', '--cluster-key-file', '--vip', '--heartbeat-interval', '--dead-after', '--preempt', '--no-preempt', '--on-state-change']) t.match(help.stdout, flag);
});
