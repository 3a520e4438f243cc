// The `cluster` option (an HA pair: --peer, --vip, ... in the CLI, `cluster:` in a config file),
// checked once like every other option: the key is read here, so a missing key file, one others
// may read or one too short is an error of `lb4 start` and of `lb4 check-config`, naming the
// field, before anything opens. Defaults and ranges come from the option table (options.ts).

import { isIP } from 'node:net';
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { loadClusterKey } from '../cluster/cluster-key.js';
import { canonicalIp, ipBytes, parseVipSpec, resolveVip, type Vip } from '../cluster/vip.js';
import { Lb4Error } from '../errors.js';
import type { ClusterConfig, ClusterOptions, ListenerConfig } from '../types.js';
import { formatHostPort, parseHostPort, resolveHost } from './address.js';
import { optionTable, type OptionName, type OptionSpec } from './options.js';
import { parseDuration } from './duration.js';
import { showValue } from './show-value.js';

/** The option table's entries for the parts of `cluster`, by part name (`priority`, `keyFile`, ...). */
const parts = new Map(
  (Object.entries(optionTable) as Array<[OptionName, OptionSpec]>).flatMap(([name, spec]) => (spec.field?.startsWith('cluster.') ? [[spec.field.slice('cluster.'.length), { name, spec }] as const] : [])),
);
const known = [...parts.keys()];

function integerPart(part: string, raw: unknown): number {
  const { spec } = parts.get(part)!;
  const field = `cluster.${part}`;
  const value = raw === undefined ? spec.default : raw;
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${showValue(value)}`, { field });
  if (n < spec.min! || n > spec.max!) throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${spec.min} and ${spec.max}, got ${n}`, { field });
  return n;
}

function durationPart(part: string, raw: unknown): number {
  const { spec } = parts.get(part)!;
  const field = `cluster.${part}`;
  const ms = parseDuration(raw === undefined ? spec.default : raw, field);
  if (ms < spec.min! || ms > spec.max!) throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${spec.min}ms and ${spec.max}ms, got ${ms}ms`, { field });
  return ms;
}

function booleanPart(part: string, raw: unknown, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  if (raw === true || raw === 'true' || raw === 'on') return true;
  if (raw === false || raw === 'false' || raw === 'off') return false;
  throw new Lb4Error('LB4_INVALID_OPTION', `must be true or false, got ${showValue(raw)}`, { field: `cluster.${part}` });
}

/** Where heartbeats go out from and arrive: `[host:]port`; absent: the peer's port on every address. */
async function heartbeatAddress(raw: unknown, peerPort: number): Promise<{ host: string; port: number }> {
  const field = 'cluster.heartbeat';
  if (raw === undefined) return { host: '', port: peerPort };
  const text = typeof raw === 'number' ? String(raw) : raw;
  const { host, port } = parseHostPort(typeof text === 'string' && text.startsWith(':') ? text.slice(1) : text, field, { allowEmptyHost: true, allowPortZero: true });
  return { host: host === '' ? '' : await resolveHost(host, field), port };
}

/**
 * Checks `cluster` and reads its key; null when there is no cluster. `listeners` is only read to
 * tell a listener on a virtual IP (it then binds with IP_FREEBIND on both nodes).
 */
export async function validateCluster(raw: unknown, env: NodeJS.ProcessEnv = process.env): Promise<ClusterConfig | null> {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a mapping of ${known.join(', ')}`, { field: 'cluster' });
  const opts = raw as ClusterOptions & Record<string, unknown>;
  for (const key of Object.keys(opts)) {
    if (!known.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${known.join(', ')})`, { field: `cluster.${key}` });
  }
  if (opts.peer === undefined) throw new Lb4Error('LB4_INVALID_OPTION', "a cluster needs the other node's heartbeat address (--peer host:port)", { field: 'cluster.peer' });
  const peerAt = parseHostPort(opts.peer, 'cluster.peer', { allowEmptyHost: false, allowPortZero: false });
  const peer = { host: await resolveHost(peerAt.host, 'cluster.peer'), port: peerAt.port };
  // The peer is one unicast address of another host: unspecified (this host), multicast or broadcast
  // would send the heartbeats where the user did not mean them, or back to this node.
  const peerUnusable = unusableVip(peer.host);
  if (peerUnusable !== undefined && !/loopback/.test(peerUnusable)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `${peer.host} cannot be the peer: it is ${peerUnusable}`, { field: 'cluster.peer' });
  }
  const heartbeat = await heartbeatAddress(opts.heartbeat, peer.port);
  // A heartbeat socket on every address (no host, or 0.0.0.0 / ::) receives what is sent to any
  // of this host's addresses, so a peer on one of them at the same port is this node too.
  const heartbeatOnEveryAddress = heartbeat.host === '' || ipBytes(heartbeat.host)!.every((b) => b === 0);
  const peerIsThisNode = heartbeatOnEveryAddress ? isThisHost(peer.host) : canonicalIp(heartbeat.host) === canonicalIp(peer.host);
  if (heartbeat.port === peer.port && peerIsThisNode) {
    throw new Lb4Error('LB4_INVALID_OPTION', `the peer ${formatHostPort(peer.host, peer.port)} is this node's own heartbeat address: the node would hear only itself and stay active`, { field: 'cluster.peer' });
  }
  if (heartbeat.host !== '' && isIP(heartbeat.host) !== isIP(peer.host)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `heartbeat address ${heartbeat.host} and peer ${peer.host} are of different IP families`, { field: 'cluster.heartbeat' });
  }
  const nodeId = opts.nodeId ?? hostname();
  if (typeof nodeId !== 'string' || Buffer.byteLength(nodeId) < 1 || Buffer.byteLength(nodeId) > 255) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be a name of 1-255 bytes', { field: 'cluster.nodeId' });
  }
  const keyFile = opts.keyFile === undefined || opts.keyFile === '' ? null : String(opts.keyFile);
  // Read now so every problem with it is an error before anything opens; compose reads it again
  // when it starts the node, so the validated config, which may be logged or shown, holds no secret.
  loadClusterKey({ keyFile: keyFile ?? undefined, env, field: 'cluster.keyFile' });
  const vipList = opts.vips === undefined ? [] : Array.isArray(opts.vips) ? opts.vips : [opts.vips];
  const vips: Vip[] = vipList.map((v, i) => Object.freeze(resolveVip(parseVipSpec(v, `cluster.vips[${i}]`), `cluster.vips[${i}]`)));
  const seen = new Set<string>();
  for (const [i, v] of vips.entries()) {
    const field = `cluster.vips[${i}]`;
    if (seen.has(v.ip)) throw new Lb4Error('LB4_INVALID_OPTION', `virtual IP ${v.ip} is listed twice`, { field });
    seen.add(v.ip);
    // A node that is not active removes its VIPs from the interface (and a starting node removes
    // one it finds there): a VIP that is one of the host's own addresses would be taken away.
    const unusable = unusableVip(v.ip);
    if (unusable) throw new Lb4Error('LB4_INVALID_ADDRESS', `${v.ip} cannot be a virtual IP: it is ${unusable}`, { field });
    for (const [what, host] of [['heartbeat', heartbeat.host], ['peer', peer.host]] as const) {
      if (host !== '' && canonicalIp(host) === v.ip) {
        throw new Lb4Error('LB4_INVALID_ADDRESS', `${v.ip} cannot be a virtual IP: it is the ${what} address, which the backup node would remove from its interface`, { field });
      }
    }
  }
  const onStateChange = opts.onStateChange === undefined || opts.onStateChange === '' ? null : opts.onStateChange;
  if (onStateChange !== null && typeof onStateChange !== 'string' && !(Array.isArray(onStateChange) && onStateChange.length > 0 && onStateChange.every((a) => typeof a === 'string'))) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be a command line, or a list of program and arguments', { field: 'cluster.onStateChange' });
  }
  return Object.freeze({
    nodeId,
    priority: integerPart('priority', opts.priority),
    heartbeat: Object.freeze(heartbeat),
    peer: Object.freeze(peer),
    keyFile,
    vips: Object.freeze(vips),
    heartbeatIntervalMs: durationPart('heartbeatInterval', opts.heartbeatInterval),
    deadAfter: integerPart('deadAfter', opts.deadAfter),
    preempt: booleanPart('preempt', opts.preempt, true),
    onStateChange: onStateChange === null ? null : typeof onStateChange === 'string' ? onStateChange : Object.freeze([...onStateChange]),
  });
}

/**
 * Why an address cannot be a virtual IP (unspecified, loopback, multicast, broadcast): the host
 * needs it for itself, or it is no unicast address a peer could take over; undefined when it can.
 */
export function unusableVip(ip: string): string | undefined {
  let b = ipBytes(ip);
  if (!b) return 'not a numeric address';
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) b = b.subarray(12);
  if (b.length === 4) {
    if (b[0] === 0) return 'in 0.0.0.0/8 (this host)';
    if (b[0] === 127) return 'a loopback address';
    if (b[0] >= 224 && b[0] <= 239) return 'a multicast address';
    if (b.every((x) => x === 255)) return 'the broadcast address';
    return undefined;
  }
  if (b.every((x) => x === 0)) return 'the unspecified address';
  if (b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) return 'the loopback address';
  if (b[0] === 0xff) return 'a multicast address';
  return undefined;
}

/**
 * Whether `ip` is one of this host's own addresses: loopback (127.0.0.0/8, ::1) or an address on
 * one of its interfaces, as they are at validation.
 */
export function isThisHost(ip: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): boolean {
  if (/loopback/.test(unusableVip(ip) ?? '')) return true;
  const own = canonicalIp(ip);
  return Object.values(interfaces).some((infos) => (infos ?? []).some((i) => canonicalIp(i.address.split('%')[0]) === own));
}

/** Whether a listener binds a virtual IP of the cluster: it then binds with IP_FREEBIND. */
export function onVip(listener: Pick<ListenerConfig, 'ip' | 'anyInterface'>, cluster: ClusterConfig | null): boolean {
  return cluster !== null && !listener.anyInterface && cluster.vips.some((v) => v.ip === listener.ip);
}

/** One line of `lb4 check-config` and the start log: what the node is and where its peer is. */
export function describeCluster(c: ClusterConfig): string {
  const hb = c.heartbeat.host === '' ? `:${c.heartbeat.port}` : formatHostPort(c.heartbeat.host, c.heartbeat.port);
  const vips = c.vips.length === 0 ? 'no virtual IPs' : c.vips.map((v) => `${v.ip}/${v.prefix} on ${v.dev}`).join(', ');
  return [
    `cluster: node ${c.nodeId}, priority ${c.priority}, heartbeat ${hb} -> peer ${formatHostPort(c.peer.host, c.peer.port)} every ${c.heartbeatIntervalMs}ms, dead after ${c.deadAfter}`,
    `${c.preempt ? 'preempt' : 'no preempt'}; key from ${c.keyFile ?? 'LB4_CLUSTER_KEY'}; ${vips}${c.onStateChange ? `; on state change: ${Array.isArray(c.onStateChange) ? c.onStateChange.join(' ') : c.onStateChange}` : ''}`,
  ].join('; ');
}
