// The heartbeat on the wire: what one node tells its peer every interval, and the HMAC that
// proves it came from a holder of the shared key. Pure: encode, decode and authenticate bytes.
//
// Layout (network byte order), 80 + n bytes:
//
//    0  4  magic "LB4H"         random traffic on the port is "malformed", not "bad-version"
//    4  1  version (2)          checked before the MAC: another version may place it elsewhere
//    5  1  flags                bit 0: leaving (the sender is stopping; take over at once)
//    6  1  state                0 init, 1 backup, 2 active, 3 fault
//    7  1  priority             1-255, higher wins
//    8  4  healthy backends     the sender's health summary
//   12  4  backend generation   differs when the two nodes run different backend sets
//   16  8  epoch                the sender's start time (wall clock, ms): orders its restarts
//   24  8  sequence             0, 1, 2, ... within one epoch
//   32  8  timestamp            the sender's wall clock when it sent this (ms)
//   40  8  instance             random, chosen once per process: tells this node's own
//                               heartbeat (looped back) from a peer that has the same node id
//   48  1  n                    length of the node id, 1-255
//   49  n  node id              UTF-8
// 49+n 32  HMAC-SHA256          over every byte before it, under the shared key
//
// Version 1 had no instance field (the node id was its place): a version 1 heartbeat is refused
// as "bad-version", so both nodes of a pair must run a build of the same version.
//
// The MAC covers the whole message, version and magic included, so no field can be changed or
// moved without the key. Nothing in it is secret: the key authenticates, it does not encrypt.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const heartbeatVersion = 2;
const magic = Buffer.from('LB4H', 'latin1');
const instanceOffset = 40;
const idLengthOffset = 48;
const headerBytes = 49;
const macBytes = 32;
const flagLeaving = 0x01;

/** The four states of a node, numbered as the wire carries them. */
export const clusterStates = ['init', 'backup', 'active', 'fault'] as const;
export type ClusterState = (typeof clusterStates)[number];

/** What a heartbeat says. */
export interface Heartbeat {
  readonly nodeId: string;
  /** The sending process: 16 lower-case hex digits (see newInstanceId). */
  readonly instance: string;
  readonly priority: number;
  readonly state: ClusterState;
  readonly healthyBackends: number;
  readonly generation: number;
  readonly epoch: number;
  readonly sequence: number;
  readonly timestamp: number;
  readonly leaving: boolean;
}

/** The longest node id the wire can carry, in UTF-8 bytes. */
export const maxNodeIdBytes = 255;

const instancePattern = /^[0-9a-f]{16}$/;

/**
 * A random 64-bit instance id, as 16 lower-case hex digits, chosen once per process. Two nodes
 * with the same node id (two machines cloned from one image keep its host name) still differ
 * here, so each can tell the other's heartbeats from its own looped back. Hex strings of equal
 * length order as the numbers do, which the election's last tie-break relies on.
 */
export function newInstanceId(): string {
  return randomBytes(8).toString('hex');
}

/** Whether `s` is an instance id as newInstanceId makes them. */
export function isInstanceId(s: string): boolean {
  return instancePattern.test(s);
}

const u32 = (v: number, name: string) => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`heartbeat ${name} must be an integer from 0 to 4294967295, got ${v}`);
  return v;
};
const u64 = (v: number, name: string) => {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`heartbeat ${name} must be a non-negative safe integer, got ${v}`);
  return BigInt(v);
};

/** Encodes and signs a heartbeat. Throws RangeError on a value the wire cannot carry. */
export function encodeHeartbeat(hb: Heartbeat, key: Buffer): Buffer {
  const id = Buffer.from(hb.nodeId, 'utf8');
  if (id.length < 1 || id.length > maxNodeIdBytes) throw new RangeError(`heartbeat node id must be 1-${maxNodeIdBytes} bytes of UTF-8, got ${id.length}`);
  if (!Number.isInteger(hb.priority) || hb.priority < 1 || hb.priority > 255) throw new RangeError(`heartbeat priority must be 1-255, got ${hb.priority}`);
  const state = clusterStates.indexOf(hb.state);
  if (state < 0) throw new RangeError(`heartbeat state "${hb.state}" is not one of ${clusterStates.join(', ')}`);
  if (!isInstanceId(hb.instance)) throw new RangeError(`heartbeat instance must be 16 lower-case hex digits, got "${hb.instance}"`);
  const buf = Buffer.allocUnsafe(headerBytes + id.length + macBytes);
  magic.copy(buf, 0);
  buf.writeUInt8(heartbeatVersion, 4);
  buf.writeUInt8(hb.leaving ? flagLeaving : 0, 5);
  buf.writeUInt8(state, 6);
  buf.writeUInt8(hb.priority, 7);
  buf.writeUInt32BE(u32(hb.healthyBackends, 'healthyBackends'), 8);
  buf.writeUInt32BE(u32(hb.generation, 'generation'), 12);
  buf.writeBigUInt64BE(u64(hb.epoch, 'epoch'), 16);
  buf.writeBigUInt64BE(u64(hb.sequence, 'sequence'), 24);
  buf.writeBigUInt64BE(u64(hb.timestamp, 'timestamp'), 32);
  buf.write(hb.instance, instanceOffset, 8, 'hex');
  buf.writeUInt8(id.length, idLengthOffset);
  id.copy(buf, headerBytes);
  mac(buf.subarray(0, headerBytes + id.length), key).copy(buf, headerBytes + id.length);
  return buf;
}

function mac(data: Buffer, key: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/**
 * Why a received datagram is not a heartbeat this node accepts; metric labels, defined once.
 * `own-heartbeat`: this process's own (its instance id), looped back to it. A heartbeat with this
 * node's id but another instance is not refused: it is a peer misconfigured with the same id.
 */
export const rejectReasons = ['malformed', 'bad-version', 'bad-mac', 'own-heartbeat', 'timestamp', 'replayed'] as const;
export type RejectReason = (typeof rejectReasons)[number];

export type DecodeResult = { ok: true; heartbeat: Heartbeat } | { ok: false; reason: 'malformed' | 'bad-version' | 'bad-mac' };

/**
 * Checks the shape, the version and the MAC, in that order, then reads the fields. Says nothing
 * about freshness or the sender (see HeartbeatFilter). Never throws on any input.
 */
export function decodeHeartbeat(buf: Buffer, key: Buffer): DecodeResult {
  if (buf.length < headerBytes + 1 + macBytes || !buf.subarray(0, 4).equals(magic)) return { ok: false, reason: 'malformed' };
  if (buf.readUInt8(4) !== heartbeatVersion) return { ok: false, reason: 'bad-version' };
  const idBytes = buf.readUInt8(idLengthOffset);
  const signed = headerBytes + idBytes;
  if (idBytes === 0 || buf.length !== signed + macBytes) return { ok: false, reason: 'malformed' };
  // Compared in constant time, so the time a forgery takes to be refused says nothing about
  // how many of its leading MAC bytes were right.
  if (!timingSafeEqual(mac(buf.subarray(0, signed), key), buf.subarray(signed))) return { ok: false, reason: 'bad-mac' };
  // Authentic from here on, but still checked: a peer running a newer build of version 2 might
  // send a state this build does not know. Flag bits this build does not know are ignored, so
  // a later build may add one without a new version.
  const flags = buf.readUInt8(5);
  const state = clusterStates[buf.readUInt8(6)];
  const priority = buf.readUInt8(7);
  const epoch = buf.readBigUInt64BE(16);
  const sequence = buf.readBigUInt64BE(24);
  const timestamp = buf.readBigUInt64BE(32);
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  if (state === undefined || priority === 0 || epoch > limit || sequence > limit || timestamp > limit) {
    return { ok: false, reason: 'malformed' };
  }
  const nodeId = buf.toString('utf8', headerBytes, signed);
  // Invalid UTF-8 decodes to replacement characters, which do not encode back to the same bytes.
  if (!Buffer.from(nodeId, 'utf8').equals(buf.subarray(headerBytes, signed))) return { ok: false, reason: 'malformed' };
  return {
    ok: true,
    heartbeat: {
      nodeId,
      instance: buf.toString('hex', instanceOffset, instanceOffset + 8),
      priority,
      state,
      healthyBackends: buf.readUInt32BE(8),
      generation: buf.readUInt32BE(12),
      epoch: Number(epoch),
      sequence: Number(sequence),
      timestamp: Number(timestamp),
      leaving: (flags & flagLeaving) !== 0,
    },
  };
}
