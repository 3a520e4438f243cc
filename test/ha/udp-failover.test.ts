// UDP sessions across failovers, in network namespaces (root only; the namespaces are the test's
// own and always deleted): two `lb4 start` processes with a UDP listener on the VIP, round robin
// and two backends that answer with their name; clients on eight fixed ports send through the VIP
// every 20 ms. Each round kills the active node (SIGKILL); the other takes over, and every client
// port must still reach the backend it had, each of those sessions placed by a replicated hint
// (the listener's sessions-from-peer counter). The killed node is restarted as the backup and
// learns the live sessions at once (the active node resends them when its peer appears).
// LB4_HA_UDP_ROUNDS sets the number of kills (default 3).

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
import { bridge, deleteOrphans, isRoot, makeNamespaces, notRootMessage, type Netns } from '../helpers/netns.js';
import { until, within } from '../helpers/sockets.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const vip = '192.0.2.10';
const keyHex = 'e5'.repeat(32);
const firstPort = 41000;
const clientCount = 8;
const rounds = Number(process.env.LB4_HA_UDP_ROUNDS ?? 3);
const run = promisify(execFile);
const wallMs = () => Date.now();

interface Status {
  node: { state: string };
  sessions: { sent: number; received: number; installed: number; hints: number; dropped: number };
}

/** One `lb4 start` in a namespace, and the state its log says it is in. */
class Lb4Node {
  state = 'init';
  readonly log: string[] = [];
  readonly exited: Promise<unknown>;
  readonly #child: ChildProcess;
  constructor(readonly id: string, readonly ns: Netns, args: string[]) {
    const [command, argv] = nodeCommand(cliPath, ['start', ...args], ns.name);
    this.#child = spawn(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = once(this.#child, 'exit');
    createInterface({ input: this.#child.stderr! }).on('line', (text) => {
      this.log.push(text);
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line.component === 'cluster' && typeof line.to === 'string') this.state = line.to;
        if ((line.level as number) >= 50) process.stderr.write(`${id}: ${text}\n`);
      } catch {
        process.stderr.write(`${id}: ${text}\n`);
      }
    });
  }
  async becomes(state: string, ms = 10_000): Promise<void> {
    await until(() => this.state === state, ms, `${this.id} to become ${state}`).catch((err: Error) => {
      throw new Error(`${err.message}; its log ends:\n${this.log.slice(-8).join('\n')}`);
    });
  }
  kill(signal: NodeJS.Signals): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
  }
  async admin(path: string): Promise<string> {
    const [command, argv] = nodeCommand(fixture('admin-get.mjs'), [`http://127.0.0.1:9090${path}`], this.ns.name);
    return (await run(command, argv)).stdout;
  }
  async status(): Promise<Status> {
    return JSON.parse(await this.admin('/cluster')) as Status;
  }
  /** The listener's sessions placed by a replicated hint, from /metrics. */
  async sessionsFromPeer(): Promise<number> {
    const line = (await this.admin('/metrics')).split('\n').find((l) => l.startsWith('lb4_listener_sessions_from_peer_total'));
    return Number(line?.split(' ').at(-1) ?? NaN);
  }
}

async function startServer(t: Test, ns: Netns, name: string): Promise<void> {
  const [command, args] = nodeCommand(fixture('udp-name-server.mjs'), [name, '5300'], ns.name);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await within(once(createInterface({ input: child.stdout! }), 'line'), 10_000, `backend ${name} to bind`);
}

function startClients(t: Test, ns: Netns) {
  const [command, args] = nodeCommand(fixture('udp-port-clients.mjs'), [vip, '5300', String(firstPort), String(clientCount), '20'], ns.name);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const answers: { port: number; from: string; wallMs: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => answers.push(JSON.parse(line)));
  const ports = Array.from({ length: clientCount }, (_, i) => firstPort + i);
  return {
    /** Each port's backend, from its first answer after `after` (waits until every port has one). */
    async backends(after: number, ms = 10_000): Promise<string[]> {
      await until(() => ports.every((p) => answers.some((a) => a.port === p && a.wallMs > after)), ms, 'every client port to be answered');
      return ports.map((p) => answers.find((a) => a.port === p && a.wallMs > after)!.from);
    },
    /** Every backend each port was answered by after `after`. */
    seenSince(after: number): Set<string>[] {
      return ports.map((p) => new Set(answers.filter((a) => a.port === p && a.wallMs > after).map((a) => a.from)));
    },
  };
}

if (!isRoot) {
  t.comment(`test/ha/udp-failover.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();
  await buildDist();

  t.test('UDP clients keep their backends across failovers (round robin, replicated sessions)', async (t) => {
    const { usw: sw, uc: c, ua: a, ub: b, us1: s1, us2: s2 } = await makeNamespaces(t, 'usw', 'uc', 'ua', 'ub', 'us1', 'us2');
    await bridge(sw, [c, a, b, s1, s2]);
    const hosts: Array<[Netns, string]> = [[c, '192.0.2.1'], [a, '192.0.2.2'], [b, '192.0.2.3'], [s1, '192.0.2.11'], [s2, '192.0.2.12']];
    for (const [ns, address] of hosts) await ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    const dir = mkdtempSync(join(tmpdir(), 'lb4-ha-udp-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, `${keyHex}\n`);
    chmodSync(keyFile, 0o600);
    await startServer(t, s1, 's1');
    await startServer(t, s2, 's2');

    const nodes: Lb4Node[] = [];
    t.teardown(() => nodes.forEach((n) => n.kill('SIGKILL')));
    // --no-preempt: a restarted node stays the backup, so each round fails over exactly once.
    const start = (id: string, ns: Netns, priority: number, self: string, peer: string) => {
      const node = new Lb4Node(id, ns, [
        '--listen', `${vip}:5300/udp`, '--backend', '192.0.2.11:5300', '--backend', '192.0.2.12:5300', '--algorithm', 'roundrobin',
        '--workers', '2', '--drain-timeout', '1s', '--admin', '9090',
        '--node-id', id, '--priority', String(priority), '--no-preempt', '--heartbeat', `${self}:7000`, '--peer', `${peer}:7000`,
        '--cluster-key-file', keyFile, '--vip', `${vip}/24,dev=eth0`,
      ]);
      nodes.push(node);
      return node;
    };
    const startA = () => start('lb-a', a, 200, '192.0.2.2', '192.0.2.3');
    const startB = () => start('lb-b', b, 100, '192.0.2.3', '192.0.2.2');
    let active = startA();
    let backup = startB();
    await active.becomes('active');
    await backup.becomes('backup');

    const clients = startClients(t, c);
    const initial = await clients.backends(0);
    t.same([...new Set(initial)].sort(), ['s1', 's2'], `round robin gave the clients both backends: ${initial.join(' ')}`);

    for (let round = 0; round < rounds; round++) {
      // The backup has a hint for every client before the kill (replicated at session start, or
      // resent when it came back).
      await until(async () => (await backup.status()).sessions.hints >= clientCount, 10_000, `${backup.id} to hold a hint for every client`);
      const before = await clients.backends(wallMs());
      const killedAt = wallMs();
      active.kill('SIGKILL');
      await backup.becomes('active');
      const after = await clients.backends(killedAt + 1);
      t.same(after, before, `round ${round}: after ${active.id} was killed, every client port reaches its backend through ${backup.id}: ${after.join(' ')}`);
      t.equal(await backup.sessionsFromPeer(), clientCount, `round ${round}: and each of those sessions was placed by a replicated hint`);
      await active.exited;
      // The killed node comes back as the backup and is told every live session at once.
      const restarted = active.id === 'lb-a' ? startA() : startB();
      await restarted.becomes('backup');
      [active, backup] = [backup, restarted];
    }
    // Since the first answer, no client ever met the other backend.
    const seen = clients.seenSince(0);
    t.ok(seen.every((s, i) => s.size === 1 && s.has(initial[i])), `every client port only ever reached one backend: ${seen.map((s) => [...s].join('+')).join(' ')}`);
    const s = await active.status();
    t.ok(s.sessions.sent >= clientCount, `the active node streamed its sessions (${s.sessions.sent} changes sent)`);
    nodes.forEach((n) => n.kill('SIGTERM'));
    await Promise.all(nodes.map((n) => within(n.exited, 10_000, `${n.id} to exit`)));
  });
}
