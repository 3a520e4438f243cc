// The NAT tests' network: a client, the lb4 node and two backends, each in a namespace this
// test makes (deleted at the end, with everything in them: processes die with `kill`, nftables
// tables and conntrack entries with their namespace).
//
//   client 10.10.0.2 --veth-- 10.10.0.1 lb4 node 10.20.0.1 --bridge-- 10.20.0.11 b1, 10.20.0.12 b2
//
// In gateway mode the backends' default route is the lb4 node (replies pass back through its
// conntrack); `masquerade` tests take that route away, so only lb4's address works as the source.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { nodeCommand } from '../helpers/cluster-child.js';
import { bridge, link, makeNamespaces, type Netns } from '../helpers/netns.js';
import { within } from '../helpers/sockets.js';

const peerScript = fileURLToPath(new URL('../fixtures/nat-peer.mjs', import.meta.url));
const balancerScript = fileURLToPath(new URL('../fixtures/nat-balancer-process.mjs', import.meta.url));

export const vip = '10.10.0.1';
export const lbInside = '10.20.0.1';
export const clientIp = '10.10.0.2';
export const backendIps = { b1: '10.20.0.11', b2: '10.20.0.12' } as const;
/** The same network in IPv6, with `makeTopology(t, { ipv6: true })`. */
export const vip6 = 'fd10::1';
export const clientIp6 = 'fd10::2';
export const backendIps6 = { b1: 'fd20::11', b2: 'fd20::12' } as const;

export interface Topology {
  client: Netns;
  lb: Netns;
  b1: Netns;
  b2: Netns;
}

export async function makeTopology(t: Test, options: { ipv6?: boolean } = {}): Promise<Topology> {
  const ns = await makeNamespaces(t, 'natc', 'natlb', 'natsw', 'natb1', 'natb2');
  const { natc: client, natlb: lb, natsw: sw, natb1: b1, natb2: b2 } = ns;
  // The lb node's side of the client link is eth1: `bridge` gives every host its eth0.
  await link(client, lb, 'eth0', 'eth1');
  await client.ip('addr', 'add', `${clientIp}/24`, 'dev', 'eth0');
  await lb.ip('addr', 'add', `${vip}/24`, 'dev', 'eth1');
  await client.ip('route', 'add', 'default', 'via', vip);
  await bridge(sw, [lb, b1, b2]);
  await lb.ip('addr', 'add', `${lbInside}/24`, 'dev', 'eth0');
  for (const [name, host] of [['b1', b1], ['b2', b2]] as const) {
    await host.ip('addr', 'add', `${backendIps[name]}/24`, 'dev', 'eth0');
    await host.ip('route', 'add', 'default', 'via', lbInside);
  }
  await run(lb, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  if (options.ipv6) {
    // nodad: the addresses are usable at once, not "tentative" while duplicate detection runs.
    await client.ip('-6', 'addr', 'add', `${clientIp6}/64`, 'dev', 'eth0', 'nodad');
    await lb.ip('-6', 'addr', 'add', `${vip6}/64`, 'dev', 'eth1', 'nodad');
    await lb.ip('-6', 'addr', 'add', 'fd20::1/64', 'dev', 'eth0', 'nodad');
    await client.ip('-6', 'route', 'add', 'default', 'via', vip6);
    for (const [name, host] of [['b1', b1], ['b2', b2]] as const) {
      await host.ip('-6', 'addr', 'add', `${backendIps6[name]}/64`, 'dev', 'eth0', 'nodad');
      await host.ip('-6', 'route', 'add', 'default', 'via', 'fd20::1');
    }
    await run(lb, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
  }
  return { client, lb, b1, b2 };
}

/** Runs a command inside `ns` to its end; rejects with its stderr. */
export async function run(ns: Netns, argv: string[]): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${argv.join(' ')} in ${ns.name}: exit ${code}: ${err.trim()}`);
  return out;
}

/** A process in a namespace that prints JSON lines. */
export class JsonChild {
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  readonly #unread: Record<string, unknown>[] = [];
  readonly #waiters: Array<{ key: string; resolve: (l: Record<string, unknown>) => void }> = [];

  constructor(t: Test, command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = once(this.child, 'exit');
    t.teardown(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    });
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      const w = this.#waiters.findIndex((x) => x.key in line);
      if (w >= 0) this.#waiters.splice(w, 1)[0].resolve(line);
      else this.#unread.push(line);
    });
  }

  /** The next line that has `key` (or an `error` line, which fails the wait). */
  async next<T = unknown>(key: string, ms = 30_000): Promise<T> {
    const i = this.#unread.findIndex((l) => key in l || 'error' in l);
    const line =
      i >= 0 ? this.#unread.splice(i, 1)[0] : await within(new Promise<Record<string, unknown>>((resolve) => this.#waiters.push({ key, resolve })), ms, `a "${key}" line`);
    if (!(key in line) && 'error' in line) throw new Error(String(line.error));
    return line[key] as T;
  }

  send(o: unknown): void {
    this.child.stdin!.write(typeof o === 'string' ? `${o}\n` : `${JSON.stringify(o)}\n`);
  }
}

/** A nat-peer.mjs process in `ns`. */
export function peer(t: Test, ns: Netns, args: string[]): JsonChild {
  const [command, argv] = nodeCommand(peerScript, args, ns.name);
  return new JsonChild(t, command, argv);
}

/** A TCP (and a UDP) backend named after its namespace, ready to serve. */
export async function startBackends(t: Test, topo: Topology, port = 8080): Promise<Record<'b1' | 'b2', JsonChild>> {
  const out = { b1: peer(t, topo.b1, ['server', String(port), 'b1']), b2: peer(t, topo.b2, ['server', String(port), 'b2']) };
  await Promise.all(Object.values(out).map((c) => c.next('listening')));
  return out;
}

export interface LbLaunch {
  /** Other nft / conntrack commands (BalancerDeps.natTools). */
  natTools?: { nft?: string; conntrack?: string };
  /** A command the node runs under, e.g. setpriv to drop a capability. */
  wrap?: string[];
}

/** lb4 (nat-balancer-process.mjs, from dist/) in the lb node's namespace, not waited for. */
export function launchLb(t: Test, lb: Netns, options: object, launch: LbLaunch = {}): JsonChild {
  const args = [JSON.stringify(options), ...(launch.natTools ? [JSON.stringify(launch.natTools)] : [])];
  const [command, argv] = nodeCommand(balancerScript, args, lb.name);
  // `ip netns exec NS env ... node`: a wrapper goes between the namespace and env.
  const wrapped = launch.wrap ? [...argv.slice(0, 3), ...launch.wrap, ...argv.slice(3)] : argv;
  return new JsonChild(t, command, wrapped);
}

/** The same, resolved once it has started. */
export async function startLb(t: Test, lb: Netns, options: object, launch: LbLaunch = {}): Promise<JsonChild> {
  const child = launchLb(t, lb, options, launch);
  await child.next('ready', 60_000);
  return child;
}

/** The exchanges of `count` sha clients: who answered, whether the bytes arrived intact. */
export async function shaExchanges(t: Test, client: Netns, count: number, up = 4096, down = 4096, to = vip): Promise<Array<{ name: string; remote: string; ok: boolean }>> {
  const c = peer(t, client, ['sha', to, '80', String(up), String(down), String(count)]);
  return c.next('results', 120_000);
}

/** Whether lb4's table exists in `lb`. */
export async function hasTable(lb: Netns, table = 'lb4'): Promise<boolean> {
  const out = await run(lb, ['nft', 'list', 'tables']);
  return out.split('\n').some((l) => l.trim() === `table inet ${table}`);
}

/**
 * Whether lb4's table, as `nft list` prints it, loads again (checked with `nft -c` under another
 * name): an operator saves rule sets that way, and an nft that prints a rule without a match it
 * depends on writes a file that no longer loads. Resolves to nft's refusal, or '' when it loads.
 * `ruleset`: the whole rule set as `nft list ruleset` prints it, after a `flush ruleset`, as a
 * saved /etc/nftables.conf would load it.
 */
export async function listingRefusal(lb: Netns, table = 'lb4', what: 'table' | 'ruleset' = 'table'): Promise<string> {
  const listed = what === 'table' ? await run(lb, ['nft', 'list', 'table', 'inet', table]) : await run(lb, ['nft', 'list', 'ruleset']);
  const dir = mkdtempSync(join(tmpdir(), 'lb4-relist-'));
  try {
    const file = join(dir, 'table.nft');
    writeFileSync(file, what === 'table' ? listed.replace(`table inet ${table} {`, `table inet ${table}_relisted {`) : `flush ruleset\n${listed}`);
    await run(lb, ['nft', '-c', '-f', file]);
    return '';
  } catch (e) {
    return (e as Error).message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
