// What `lb4 cluster` prints of a node's status (GET /cluster): the node, the peer, the VIPs,
// the last transition, rejected heartbeats and warnings. No sockets.

import t from 'tap';
import { describeStatus } from '../../bin/commands/cluster.js';
import type { ClusterStatus } from '../../lib/cluster/cluster-types.js';

const status: ClusterStatus = {
  node: { id: 'lb-a', instance: '00000000000000aa', priority: 200, state: 'active', stateSince: 0, healthyBackends: 2, generation: 7, preempt: true, heartbeat: { address: '192.0.2.2', port: 7000 }, intervalMs: 100, deadAfter: 3 },
  peer: { address: '192.0.2.3', port: 7000, up: true, id: 'lb-b', instance: '00000000000000bb', duplicateNodeId: false, priority: 100, state: 'backup', healthyBackends: 2, generation: 8, lastHeartbeatAgeMs: 41.6, leaving: false, restarts: 1 },
  generationMismatch: true,
  vips: [{ address: '192.0.2.10/24', dev: 'eth0', held: true }],
  transitions: 2,
  recentTransitions: [{ from: 'init', to: 'active', reason: 'outranks-peer', at: Date.UTC(2026, 10, 29, 15, 0, 0) }],
  heartbeats: { sent: 100, sendErrors: 0, accepted: 99, rejected: { malformed: 0, 'bad-version': 0, 'bad-mac': 3, 'own-heartbeat': 0, timestamp: 0, replayed: 1 } },
  vipErrors: 0,
};

t.test('lb4 cluster describes both nodes', async (t) => {
  t.equal(
    describeStatus(status),
    [
      'node lb-a: active (priority 200, 2 healthy backend(s), preempt, heartbeat every 100 ms, dead after 3)',
      'peer lb-b at 192.0.2.3:7000: up, backup (priority 100), last heartbeat 42 ms ago',
      'vip 192.0.2.10/24 on eth0: held here',
      'transitions: 2, last init -> active (outranks-peer) at 2026-11-29T15:00:00.000Z',
      'heartbeats: 100 sent, 99 accepted, rejected bad-mac 3, replayed 1',
      'warning: the peer runs a different backend set (peer generation 8, this node 7)',
    ].join('\n'),
  );
  const lonely = { ...status, generationMismatch: false, peer: { ...status.peer, up: false, id: null, priority: null, state: null, lastHeartbeatAgeMs: null }, transitions: 0, recentTransitions: [] };
  t.match(describeStatus(lonely), /^peer \? at 192\.0\.2\.3:7000: down, unknown, never heard$/m);
  t.match(describeStatus(lonely), /^transitions: 0$/m);
  const twin = { ...status, peer: { ...status.peer, id: 'lb-a', duplicateNodeId: true } };
  t.match(describeStatus(twin), /^warning: the peer has this node's id "lb-a": give each node its own with --node-id$/m);
  const rejected = { malformed: 0, 'bad-version': 0, 'bad-mac': 0, 'own-batch': 0, timestamp: 0, replayed: 0 };
  const replicating = { ...status, sessions: { sent: 12, received: 3, installed: 2, unknownListener: 1, unknownBackend: 0, dropped: 0, hints: 2, rejected } };
  t.match(describeStatus(replicating), /^udp sessions: 12 sent to the peer, 3 received, 2 installed, 2 hint\(s\) held$/m);
  t.notMatch(describeStatus(status), /udp sessions/, 'a node without replication says nothing of it');
});
