// The systems the failover bench measures, each as "how to start one node of the pair inside its
// namespace": lb4 (one process per node: heartbeat, VIP and proxy in one), and keepalived (VRRP,
// moving the VIP) beside HAProxy (the proxy), with 1 s and 0.1 s advertisements. Every system
// serves the same VIP and port from the same two backends, with health checks of the same pace
// (every 100 ms, down after 2 failures, up after 1 success), so only the failover differs.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeCommand } from '../test/helpers/netns-core.mjs';
import { pairAddresses } from '../test/helpers/pair-topology.mjs';
import { start } from './processes.mjs';

/** The port the VIP serves and the backends' port. */
export const VIP_PORT = 80;
export const BACKEND_PORT = 8080;
const HEARTBEAT_PORT = 7000;
const backends = [pairAddresses.s1, pairAddresses.s2];

/**
 * One node of a pair: `id` names it in logs, `ns` is its namespace, `self` and `peer` the two
 * nodes' addresses, and `priority` is higher on node a, which is active whenever it runs.
 * @typedef {{ id: string, ns: import('../test/helpers/netns-core.mjs').Netns, self: string, peer: string, priority: number }} PairNode
 */

/**
 * What a node needs from the bench: a temp directory for configs and pid files, the shared
 * heartbeat key file, the lb4 CLI to run, and a counter so every start writes fresh files.
 * @typedef {{ dir: string, keyFile: string, lb4Cli: string, starts: number }} NodeContext
 */

/**
 * @typedef {object} FailoverSystem
 * @property {string} name short name, for --systems and the JSON
 * @property {string} label for the tables
 * @property {'SIGKILL' | 'SIGTERM'} signal what a "failure" sends to the active node's processes
 * @property {string[]} needs programs it needs (keepalived, haproxy)
 * @property {string} describe how it is set up, for the report
 * @property {(ctx: NodeContext, node: PairNode) => import('./processes.mjs').Child[]} startNode
 */

/** Starts `argv` inside namespace `ns` through bench/processes.mjs (so it is stopped at exit). */
function startIn(name, ns, argv) {
  return start(name, 'ip', ['netns', 'exec', ns.name, ...argv]);
}

/** @param {NodeContext} ctx @param {PairNode} node */
function startLb4(ctx, node) {
  const [command, argv] = nodeCommand(ctx.lb4Cli, [
    'start',
    '--listen', `${pairAddresses.vip}:${VIP_PORT}`,
    ...backends.flatMap((b) => ['--backend', `${b}:${BACKEND_PORT}`]),
    '--health-check', 'tcp', '--health-interval', '100ms', '--health-timeout', '80ms', '--rise', '1', '--fall', '2',
    '--workers', '1', '--drain-timeout', '1s',
    // The heartbeat interval and dead-after are lb4's defaults (100 ms, 3): not set here.
    '--node-id', node.id, '--priority', String(node.priority),
    '--heartbeat', `${node.self}:${HEARTBEAT_PORT}`, '--peer', `${node.peer}:${HEARTBEAT_PORT}`,
    '--cluster-key-file', ctx.keyFile, '--vip', `${pairAddresses.vip}/${pairAddresses.prefix},dev=eth0`,
  ]);
  return [startIn(`lb4 ${node.id}`, node.ns, [command, ...argv])];
}

/**
 * HAProxy as the proxy of one node: one thread (as lb4's one worker), bound to the VIP whether
 * or not the node holds it (`transparent`: IP_TRANSPARENT, as root), the same health checks.
 */
function haproxyConfig() {
  return `global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend vip
  bind ${pairAddresses.vip}:${VIP_PORT} transparent
  default_backend servers
backend servers
${backends.map((b, i) => `  server s${i + 1} ${b}:${BACKEND_PORT} check inter 100 fall 2 rise 1`).join('\n')}
`;
}

/**
 * keepalived as the VRRP side of one node, configured as its documentation shows a pair: node a
 * MASTER with the higher priority, node b BACKUP, preemption on (keepalived's default), the VIP
 * on eth0. VRRP advertisements go to the multicast group 224.0.0.18 across the bridge. Below
 * 1 s, advert_int needs VRRP version 3 (version 2 counts whole seconds).
 * @param {number} advertSeconds
 * @param {PairNode} node
 */
function keepalivedConfig(advertSeconds, node) {
  return `global_defs {
  router_id ${node.id}
${advertSeconds < 1 ? '  vrrp_version 3\n' : ''}}
vrrp_instance lb4fo {
  state ${node.priority > 100 ? 'MASTER' : 'BACKUP'}
  interface eth0
  virtual_router_id 51
  priority ${node.priority}
  advert_int ${advertSeconds}
  virtual_ipaddress {
    ${pairAddresses.vip}/${pairAddresses.prefix} dev eth0
  }
}
`;
}

/** @param {number} advertSeconds @returns {FailoverSystem} */
function keepalivedHaproxy(advertSeconds) {
  return {
    name: `keepalived-${advertSeconds}s`,
    label: `keepalived ${advertSeconds} s + HAProxy`,
    signal: 'SIGKILL',
    needs: ['keepalived', 'haproxy'],
    describe:
      `keepalived (VRRP${advertSeconds < 1 ? ' version 3' : ''}, advert_int ${advertSeconds}, node a MASTER priority 200, node b BACKUP priority 100, preempt) ` +
      'moves the VIP; HAProxy (1 thread, bind VIP:80 transparent, checks every 100 ms, fall 2, rise 1) on each node proxies',
    startNode(ctx, node) {
      const n = ++ctx.starts;
      const file = (what) => join(ctx.dir, `${node.id}-${n}-${what}`);
      writeFileSync(file('haproxy.cfg'), haproxyConfig());
      writeFileSync(file('keepalived.conf'), keepalivedConfig(advertSeconds, node));
      // --dont-fork keeps keepalived's parent in the foreground, so the bench owns it (its VRRP
      // child runs in the same namespace and dies with the namespace's other processes). Pid
      // files are fresh for every start: keepalived refuses to start while the pid in its pid
      // file runs, and the default paths would make the two nodes (one host) refuse each other.
      return [
        startIn(`haproxy ${node.id}`, node.ns, ['haproxy', '-db', '-f', file('haproxy.cfg')]),
        startIn(`keepalived ${node.id}`, node.ns, [
          'keepalived', '--dont-fork', '--vrrp', '--log-console', '--no-syslog', '-f', file('keepalived.conf'),
          '-p', file('keepalived.pid'), '-r', file('vrrp.pid'), '-c', file('checkers.pid'),
        ]),
      ];
    },
  };
}

/** @type {FailoverSystem} */
const lb4 = {
  name: 'lb4',
  label: 'lb4',
  signal: 'SIGKILL',
  needs: [],
  describe:
    'two lb4 nodes, one process each: heartbeat every 100 ms, peer dead after 3 missed (the defaults), node a priority 200, node b 100, preempt; ' +
    '1 worker, TCP checks every 100 ms, fall 2, rise 1',
  startNode: startLb4,
};

/** lb4 again, stopped cleanly: the leaving heartbeat hands over at once. */
const lb4Stop = { ...lb4, name: 'lb4-sigterm', label: 'lb4, clean stop (SIGTERM)', signal: 'SIGTERM', describe: `${lb4.describe}; the active node gets SIGTERM instead of SIGKILL` };

/** Every system, in report order. The keepalived ones are the anchors lb4's crash outage is compared with. */
export const failoverSystems = [lb4, keepalivedHaproxy(1), keepalivedHaproxy(0.1), lb4Stop];
