// `lb4 cluster`: a running node's view of its HA pair, through its admin API (GET /cluster): this
// node and the peer (states, priorities, the age of the last heartbeat), the VIPs it holds, and
// what went wrong (rejected heartbeats, VIP errors, configs that differ).

import type { ClusterStatus } from '../../lib/cluster/cluster-types.js';
import { callAdmin, type AdminFlags } from './admin-client.js';

/** What `lb4 cluster` prints for a status (without --json). */
export function describeStatus(s: ClusterStatus): string {
  const n = s.node;
  const p = s.peer;
  const age = p.lastHeartbeatAgeMs === null ? 'never heard' : `last heartbeat ${Math.round(p.lastHeartbeatAgeMs)} ms ago`;
  const peerState = p.state === null ? 'unknown' : p.leaving ? `${p.state}, leaving` : p.state;
  const rejected = Object.entries(s.heartbeats.rejected).filter(([, count]) => count > 0);
  const last = s.recentTransitions.at(-1);
  const lines = [
    `node ${n.id}: ${n.state} (priority ${n.priority}, ${n.healthyBackends} healthy backend(s), ${n.preempt ? 'preempt' : 'no preempt'}, heartbeat every ${n.intervalMs} ms, dead after ${n.deadAfter})`,
    `peer ${p.id ?? '?'} at ${p.address}:${p.port}: ${p.up ? 'up' : 'down'}, ${peerState}${p.priority === null ? '' : ` (priority ${p.priority})`}, ${age}`,
    ...s.vips.map((v) => `vip ${v.address} on ${v.dev}: ${v.held ? 'held here' : 'not held here'}`),
    `transitions: ${s.transitions}${last ? `, last ${last.from} -> ${last.to} (${last.reason}) at ${new Date(last.at).toISOString()}` : ''}`,
    `heartbeats: ${s.heartbeats.sent} sent, ${s.heartbeats.accepted} accepted, ${rejected.length === 0 ? 'none rejected' : `rejected ${rejected.map(([r, c]) => `${r} ${c}`).join(', ')}`}`,
  ];
  const r = s.sessions;
  if (r) lines.push(`udp sessions: ${r.sent} sent to the peer, ${r.received} received, ${r.installed} installed, ${r.hints} hint(s) held${r.dropped > 0 ? `, ${r.dropped} dropped unsent` : ''}`);
  if (p.duplicateNodeId) lines.push(`warning: the peer has this node's id "${n.id}": give each node its own with --node-id`);
  if (s.generationMismatch) lines.push(`warning: the peer runs a different backend set (peer generation ${p.generation}, this node ${n.generation})`);
  if (s.vipErrors > 0) lines.push(`warning: ${s.vipErrors} virtual IP error(s); see the log`);
  return lines.join('\n');
}

export async function cluster(flags: AdminFlags): Promise<void> {
  const s = (await callAdmin(flags, 'GET', '/cluster')) as ClusterStatus;
  process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : `${describeStatus(s)}\n`);
}
