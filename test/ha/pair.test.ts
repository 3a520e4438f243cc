// Two real `lb4 start` processes (from dist/) as an HA pair, each in its own network namespace,
// with a client and two backends, all on one bridge; root only, and every namespace is the
// test's own and deleted at the end (also on failure). The client opens a new TCP connection to
// the VIP every 10 ms, so every outage is measured where a user would see it.
//
// In order, on one topology: simultaneous start (one active); forged, replayed and wrong-key
// heartbeats change nothing; SIGKILL of the active node, several times (a restarted node first
// removes the VIP its crash left, then takes the address back by preemption); SIGTERM (leaving
// heartbeat); a crashed node restarted below its peer dropping the VIP it left; heartbeat loss both ways and one way, then recovery; fault when every backend is
// down; simultaneous start of two equal nodes. LB4_HA_ROUNDS sets the number of SIGKILL rounds.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { nodeCommand } from '../helpers/cluster-child.js';
import { buildDist, cliPath } from '../helpers/cli.js';
import { deleteOrphans, isRoot, makeNamespaces, notRootMessage, type Netns } from '../helpers/netns.js';
import { outage, pairAddresses, pairHosts, tcpNameServer, tcpProber, wirePair, type Attempt } from '../helpers/pair-topology.mjs';
import { until, within } from '../helpers/sockets.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const vip = pairAddresses.vip;
const keyHex = 'd4'.repeat(32);
// Date.now(), as pino stamps the nodes' log lines: the same clock on both sides.
const wallMs = () => Date.now();
const rounds = Number(process.env.LB4_HA_ROUNDS ?? 4);
const run = promisify(execFile);

interface Transition {
  from: string;
  to: string;
  reason: string;
  time: number;
}

/** One `lb4 start` in a namespace: its log lines (pino JSON on stderr) and its transitions. */
class Lb4Node {
  readonly transitions: Transition[] = [];
  readonly log: string[] = [];
  readonly exited: Promise<unknown>;
  readonly #child: ChildProcess;
  constructor(readonly id: string, readonly ns: Netns, args: string[]) {
    const [command, argv] = nodeCommand(cliPath, ['start', ...args], ns.name);
    this.#child = spawn(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = once(this.#child, 'exit');
    createInterface({ input: this.#child.stderr! }).on('line', (text) => {
      this.log.push(text);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        process.stderr.write(`${id}: ${text}\n`);
        return;
      }
      if (typeof line.to === 'string' && line.component === 'cluster') this.transitions.push({ from: line.from as string, to: line.to, reason: line.reason as string, time: line.time as number });
      if ((line.level as number) >= 50) process.stderr.write(`${id}: ${text}\n`);
    });
  }
  get state(): string {
    return this.transitions.at(-1)?.to ?? 'init';
  }
  /** The first transition to `to` after wall time `after`. */
  async reaches(to: string, after = 0, ms = 5000): Promise<Transition> {
    await until(() => this.transitions.some((x) => x.to === to && x.time >= after), ms, `${this.id} to become ${to}`).catch((err: Error) => {
      throw new Error(`${err.message}; its log ends:\n${this.log.slice(-8).join('\n')}`);
    });
    return this.transitions.find((x) => x.to === to && x.time >= after)!;
  }
  kill(signal: NodeJS.Signals): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
  }
  /** `lb4 cluster --json` run in the node's namespace against its admin API. */
  async status(): Promise<{ node: { state: string }; peer: { up: boolean; id: string | null }; transitions: number; heartbeats: { rejected: Record<string, number> } }> {
    const [command, argv] = nodeCommand(cliPath, ['cluster', '--json', '--admin', '9090'], this.ns.name);
    return JSON.parse((await run(command, argv)).stdout);
  }
}

function startProber(t: Test, ns: Netns) {
  const [command, args] = nodeCommand(tcpProber, [vip, '80', '10', '1000'], ns.name);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const attempts: Attempt[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => attempts.push(JSON.parse(line)));
  return {
    attempts,
    /** Waits for a connection started after `after` to be served. */
    served: async (after: number, ms = 5000) => {
      await until(() => attempts.some((a) => a.ok && a.start > after), ms, 'the client to be served');
      return attempts.filter((a) => a.ok && a.start > after).sort((x, y) => x.end - y.end)[0];
    },
    /** The outage around `at`, once a connection started after it was served. */
    outage: (at: number) => outage(attempts, at)!,
  };
}

async function startServer(t: Test, ns: Netns, name: string) {
  const [command, args] = nodeCommand(tcpNameServer, [name, '8080'], ns.name);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await within(once(createInterface({ input: child.stdout! }), 'line'), 10_000, `backend ${name} to listen`);
  return child;
}

/** UDP payloads to `to`:`port` seen on the bridge port `dev` of `sw` (AF_PACKET, through python3), as hex. */
async function capture(sw: Netns, dev: string, to: string, port: number, count: number): Promise<string[]> {
  const script = `
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind((${JSON.stringify(dev)}, 0)); s.settimeout(3)
n = 0
while n < ${count}:
    f = s.recv(65535)
    if f[12:14] != b'\\x08\\x00' or f[23] != 17 or socket.inet_ntoa(f[30:34]) != ${JSON.stringify(to)}: continue
    ihl = (f[14] & 15) * 4; udp = 14 + ihl
    if struct.unpack('!H', f[udp+2:udp+4])[0] != ${port}: continue
    print(f[udp+8:].hex()); n += 1
`;
  const { stdout } = await run('ip', ['netns', 'exec', sw.name, 'python3', '-c', script]);
  return stdout.trim().split('\n');
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const summary = (xs: number[]) => `median ${pct(xs, 50).toFixed(0)} ms, worst ${Math.max(...xs).toFixed(0)} ms, best ${Math.min(...xs).toFixed(0)} ms (n=${xs.length}: ${xs.map((x) => x.toFixed(0)).join(' ')})`;

if (!isRoot) {
  t.comment(`test/ha/pair.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();
  await buildDist();

  t.test('an lb4 HA pair: start, forgeries, SIGKILL, SIGTERM, heartbeat loss, fault', async (t) => {
    const hosts = await makeNamespaces(t, ...pairHosts);
    const { sw, c, a, b, s1, s2 } = hosts;
    await wirePair(hosts);
    const dir = mkdtempSync(join(tmpdir(), 'lb4-ha-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, `${keyHex}\n`);
    chmodSync(keyFile, 0o600);
    let servers = [await startServer(t, s1, 's1'), await startServer(t, s2, 's2')];

    const nodes: Lb4Node[] = [];
    t.teardown(() => nodes.forEach((n) => n.kill('SIGKILL')));
    const start = (id: string, ns: Netns, priority: number, self: string, peer: string) => {
      const node = new Lb4Node(id, ns, [
        '--listen', `${vip}:80`, '--backend', '192.0.2.11:8080', '--backend', '192.0.2.12:8080',
        '--health-check', 'tcp', '--health-interval', '100ms', '--health-timeout', '80ms', '--rise', '1', '--fall', '2',
        '--workers', '1', '--drain-timeout', '1s', '--admin', '9090',
        '--node-id', id, '--priority', String(priority), '--heartbeat', `${self}:7000`, '--peer', `${peer}:7000`,
        '--cluster-key-file', keyFile, '--vip', `${vip}/24,dev=eth0`,
      ]);
      nodes.push(node);
      return node;
    };
    const startA = (priority = 200) => start('lb-a', a, priority, '192.0.2.2', '192.0.2.3');
    const startB = (priority = 100) => start('lb-b', b, priority, '192.0.2.3', '192.0.2.2');
    const holds = async (ns: Netns) => (await ns.addresses('eth0')).includes(`${vip}/24`);

    // Simultaneous start: both wait for each other, then exactly one is active.
    let nodeA = startA();
    let nodeB = startB();
    await nodeA.reaches('active');
    await nodeB.reaches('backup');
    t.notOk(nodeB.transitions.some((x) => x.to === 'active'), 'simultaneous start: lb-b never was active');
    t.ok(await holds(a), 'lb-a holds the VIP');
    t.notOk(await holds(b), 'lb-b does not, yet it listens on it (IP_FREEBIND)');
    const client = startProber(t, c);
    t.equal((await client.served(0, 10_000)).from.length, 2, 'the client is served through lb-a');

    // lb4 cluster shows both sides.
    const statusA = await nodeA.status();
    t.match(statusA, { node: { state: 'active' }, peer: { up: true, id: 'lb-b' } });

    // Forged, replayed and wrong-key heartbeats, sent from the client to both nodes.
    const replays = await capture(sw, 'p1', '192.0.2.2', 7000, 3); // lb-a's port of the bridge: what lb-b sends to lb-a
    const before = [await nodeA.status(), await nodeB.status()];
    for (const target of ['192.0.2.2', '192.0.2.3']) {
      const [command, args] = nodeCommand(fixture('heartbeat-forger.mjs'), [JSON.stringify({ host: target, port: 7000, keyHex, wrongKeyHex: 'ee'.repeat(32), replays })], c.name);
      await run(command, args);
    }
    await new Promise((r) => setTimeout(r, 300));
    const after = [await nodeA.status(), await nodeB.status()];
    t.same(after.map((s) => [s.node.state, s.transitions]), before.map((s) => [s.node.state, s.transitions]), 'forgeries changed no state');
    const rejected = (i: number, reason: string) => after[i].heartbeats.rejected[reason] - before[i].heartbeats.rejected[reason];
    for (const reason of ['malformed', 'bad-mac', 'timestamp']) t.ok(rejected(0, reason) >= 3 && rejected(1, reason) >= 3, `both nodes rejected and counted ${reason}`);
    // A replay is refused as replayed, or, once older than the 2 s window, for its timestamp.
    t.ok(rejected(0, 'replayed') + rejected(0, 'timestamp') >= 3 + 9, `lb-a rejected the replays of what lb-b sent it: ${JSON.stringify([after[0].heartbeats.rejected, before[0].heartbeats.rejected])}`);
    t.ok(rejected(1, 'bad-version') + rejected(1, 'bad-mac') >= 6, 'a changed version byte is refused');
    t.ok(await holds(a), 'lb-a still holds the VIP');

    // SIGKILL of the active node, several times. A killed lb-a leaves the VIP on its interface;
    // restarted, it removes it, comes back as backup, then takes the VIP back (preemption).
    const killed: number[] = [];
    const takeover: number[] = [];
    const gaps: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // lb-a, back after each kill, takes the VIP back (preemption): it is the one active again.
      const [active, backup] = nodeA.state === 'active' ? [nodeA, nodeB] : [nodeB, nodeA];
      await client.served(wallMs());
      // A kill at a random point of the heartbeat interval.
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      const killedAt = wallMs();
      active.kill('SIGKILL');
      const took = await backup.reaches('active', killedAt);
      t.equal(took.reason, 'peer-timeout', `round ${round}: ${backup.id} took over on the peer's timeout`);
      await client.served(killedAt);
      const o = client.outage(killedAt);
      killed.push(o.servedAfterMs);
      gaps.push(o.gapMs);
      takeover.push(took.time - killedAt);
      await active.exited;
      // Restart the killed node: it removes the VIP its crash left, and (lb-a, priority 200)
      // takes the address back by preemption; lb-b comes back as backup.
      const restartedAt = wallMs();
      const again = active === nodeA ? (nodeA = startA()) : (nodeB = startB());
      if (again === nodeA) {
        const back = await nodeA.reaches('active', restartedAt);
        t.equal(back.reason, 'preempt', `round ${round}: lb-a preempts lb-b`);
        await nodeB.reaches('backup', restartedAt);
        if (round === 1) t.notOk(await holds(b), 'the preempted node gave the VIP up');
      } else {
        await nodeB.reaches('backup', restartedAt);
        t.notOk(await holds(b), 'the restarted lb-b removed the VIP its crash left on its interface');
      }
    }
    t.comment(`SIGKILL of the active node (${rounds} kills): client served again after ${summary(killed)}`);
    t.comment(`  gap between the last answer before the kill and the first after: ${summary(gaps)}`);
    t.comment(`  new node active after: ${summary(takeover)}`);
    // The dead time is 275 ms (3 x 100 ms less the 25 ms reaction budget) from the last heartbeat,
    // which the kill follows: the takeover, and the client's next connection, fit in 300 ms. The
    // promise is the client's, checked next; the takeover time is read from the new node's log
    // line, whose delivery adds a pipe and a scheduler's delay (a CI run saw 293 ms beside a
    // client served in 282), so it only has to come before the next heartbeat interval ends.
    t.ok(Math.max(...takeover) < 375, `takeover within the dead time plus one interval after each kill: ${summary(takeover)}`);
    t.ok(Math.max(...killed) < 300, `client served again within ${Math.max(...killed).toFixed(0)} ms after every kill (under 300 ms)`);

    // SIGTERM: the leaving heartbeat hands over at once.
    await nodeA.reaches('active');
    await client.served(wallMs());
    const termAt = wallMs();
    nodeA.kill('SIGTERM');
    const left = await nodeB.reaches('active', termAt);
    t.equal(left.reason, 'peer-leaving');
    await client.served(termAt);
    const term = client.outage(termAt);
    t.ok(term.servedAfterMs < 100, `SIGTERM: client served again after ${term.servedAfterMs.toFixed(0)} ms (gap ${term.gapMs.toFixed(0)} ms; lb-b active after ${(left.time - termAt).toFixed(0)} ms)`);
    t.comment(`SIGTERM of the active node: client served again after ${term.servedAfterMs.toFixed(1)} ms, gap ${term.gapMs.toFixed(1)} ms`);
    await within(nodeA.exited, 10_000, 'lb-a to exit after SIGTERM');
    t.notOk(await holds(a), 'the stopped node gave the VIP up');

    // Crash of lb-b while active, restarted below lb-a: it must drop the VIP its crash left on its
    // interface and stay backup (it never becomes active, so it must not keep the address).
    let restartedAt = wallMs();
    nodeA = startA(50);
    await nodeA.reaches('backup', restartedAt);
    t.equal(nodeB.state, 'active', 'a returning node of lower priority does not preempt');
    const crashAt = wallMs();
    nodeB.kill('SIGKILL');
    await nodeA.reaches('active', crashAt);
    await nodeB.exited;
    t.ok(await holds(b), 'the crashed lb-b left the VIP on its interface');
    restartedAt = wallMs();
    nodeB = startB(40);
    await nodeB.reaches('backup', restartedAt);
    t.notOk(await holds(b), 'restarted as backup, lb-b removed the VIP its crash left');
    t.notOk(nodeB.transitions.some((x) => x.to === 'active'), 'and never was active');
    await client.served(wallMs());
    // From here lb-a (50) outranks lb-b (40), as before.

    // Heartbeat loss, both ways: both become active (each holds the VIP); when heartbeats
    // return, lb-b (lower priority) steps down within one interval.
    const block = (ns: Netns, peer: string) => ns.ip('route', 'add', 'blackhole', `${peer}/32`);
    const unblock = (ns: Netns, peer: string) => ns.ip('route', 'del', 'blackhole', `${peer}/32`);
    let lostAt = wallMs();
    await block(a, '192.0.2.3');
    await block(b, '192.0.2.2');
    await nodeB.reaches('active', lostAt);
    t.equal(nodeA.state, 'active', 'both ways: lb-a stays active');
    // lb-b steps down on hearing lb-a: the heal that counts is lb-a's route to lb-b, done when
    // `ip route del` returns (it takes some milliseconds to run).
    await unblock(b, '192.0.2.2');
    await unblock(a, '192.0.2.3');
    let healedAt = wallMs();
    let down = await nodeB.reaches('backup', healedAt - 100);
    t.ok(down.time - healedAt <= 110, `both ways: one active node ${(down.time - healedAt).toFixed(0)} ms after heartbeats returned (interval 100 ms)`);
    t.equal(down.reason, 'split-brain');
    t.equal(nodeA.state, 'active');
    await client.served(wallMs());
    t.pass('the client is served at the end');

    // One way: lb-b stops hearing lb-a (lb-a still hears lb-b).
    lostAt = wallMs();
    await block(a, '192.0.2.3');
    await nodeB.reaches('active', lostAt);
    t.equal(nodeA.state, 'active', 'one way: lb-a, which hears lb-b active, outranks it and stays active');
    await unblock(a, '192.0.2.3');
    healedAt = wallMs();
    down = await nodeB.reaches('backup', healedAt - 100);
    t.ok(down.time - healedAt <= 110, `one way: one active node ${(down.time - healedAt).toFixed(0)} ms after heartbeats returned`);
    // The other way: lb-a stops hearing lb-b; lb-b still hears lb-a active and stays backup.
    lostAt = wallMs();
    await block(b, '192.0.2.2');
    await new Promise((r) => setTimeout(r, 600));
    t.same([nodeA.state, nodeB.state], ['active', 'backup'], 'the other way: nothing moves');
    await unblock(b, '192.0.2.2');
    await client.served(wallMs());
    t.pass('the client is served at the end');

    // Fault: every backend down. Both nodes go to fault and nobody holds the VIP; back when one returns.
    const faultAt = wallMs();
    servers.forEach((s) => s.kill('SIGKILL'));
    const fa = await nodeA.reaches('fault', faultAt);
    await nodeB.reaches('fault', faultAt);
    t.equal(fa.reason, 'no-healthy-backends');
    t.notOk(await holds(a), 'a node in fault gives the VIP up');
    t.notOk(await holds(b), 'and the other, in fault too, does not take it');
    restartedAt = wallMs();
    servers = [await startServer(t, s1, 's1'), await startServer(t, s2, 's2')];
    await nodeA.reaches('active', restartedAt);
    await client.served(wallMs());
    t.pass('back from fault, the client is served');

    // Simultaneous start of two nodes of equal priority: exactly one active (the greater node id).
    nodeA.kill('SIGKILL');
    nodeB.kill('SIGKILL');
    await Promise.all([nodeA.exited, nodeB.exited]);
    restartedAt = wallMs();
    nodeA = startA(100);
    nodeB = startB(100);
    const winner = await Promise.race([nodeA.reaches('active', restartedAt), nodeB.reaches('active', restartedAt)]);
    await new Promise((r) => setTimeout(r, 500));
    t.same([nodeA.state, nodeB.state].sort(), ['active', 'backup'], `equal priorities started together: one active (${winner.reason})`);
    t.equal(nodeB.state, 'active', 'the greater node id (lb-b) wins a tie');
    t.notOk(nodeA.transitions.some((x) => x.to === 'active'), 'and lb-a never was active');
    await client.served(wallMs());
    nodes.forEach((n) => n.kill('SIGTERM'));
    await Promise.all(nodes.map((n) => within(n.exited, 10_000, `${n.id} to exit`)));
  });
}
