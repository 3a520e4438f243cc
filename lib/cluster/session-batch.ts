// A batch of UDP session changes on the wire: what the node serving a client tells its peer, so
// that after a failover the peer sends the client's datagrams to the same backend. Pure: encode,
// decode and authenticate bytes. It travels on the heartbeat socket, told apart by its magic.
//
// Layout (network byte order):
//
//    0  4  magic "LB4S"         not "LB4H": the heartbeat socket carries both
//    4  1  version (1)
//    5  1  flags (0)            unknown bits are ignored
//    6  2  entries              1 or more
//    8  8  instance             the sender's instance id (heartbeat.ts): its own batches, looped
//                               back, are dropped
//   16  8  sequence             0, 1, 2, ... within one instance
//   24  8  timestamp            the sender's wall clock when it sent this (ms)
//   32  .. entries, each:
//           1  kind             1 opened (or still open), 2 ended
//           1  client family    4 or 6, then 4 or 16 bytes of address
//           2  client port
//           1  local family     0 (the listener has one address), 4 or 6, then 0, 4 or 16 bytes
//           1  n, then n bytes  the listener's name, UTF-8
//           1  m, then m bytes  the backend's id within it, UTF-8
//  end 32  HMAC-SHA256          over every byte before it, under the cluster key
//
// One batch fits one datagram of at most maxBatchBytes, below a 1500-byte MTU once IPv6 and UDP
// headers are added, so no batch is ever fragmented.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { isInstanceId } from './heartbeat.js';
import { canonicalIp, ipBytes } from './vip.js';

export const sessionBatchVersion = 1;
export const sessionBatchMagic = Buffer.from('LB4S', 'latin1');
/** The largest batch datagram, in bytes. */
export const maxBatchBytes = 1400;
const headerBytes = 32;
const macBytes = 32;
/** The most entries one batch can hold: all of the shortest kind (IPv4, no local address, one-byte names). */
export const maxEntriesPerBatch = Math.floor((maxBatchBytes - headerBytes - macBytes) / 13);

/** One session as the batch carries it. */
export interface SessionEntry {
  /** `opened`: the session runs (or was just refreshed); `ended`: it is gone. */
  readonly kind: 'opened' | 'ended';
  readonly clientIp: string;
  readonly clientPort: number;
  /** The address the client sent to, on a wildcard listener; null otherwise. */
  readonly localIp: string | null;
  readonly listener: string;
  readonly backend: string;
}

export interface SessionBatchHeader {
  readonly instance: string;
  readonly sequence: number;
  readonly timestamp: number;
}

/** Why a received batch is dropped; metric labels, defined once. */
export const batchRejectReasons = ['malformed', 'bad-version', 'bad-mac', 'own-batch', 'timestamp', 'replayed'] as const;
export type BatchRejectReason = (typeof batchRejectReasons)[number];

function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(bytes.readUInt16BE(i).toString(16));
  return canonicalIp(words.join(':'));
}

/** The bytes one entry takes; throws RangeError on what the wire cannot carry. */
function entryBytes(e: SessionEntry): Buffer {
  const client = ipBytes(e.clientIp);
  const local = e.localIp === null ? Buffer.alloc(0) : ipBytes(e.localIp);
  const listener = Buffer.from(e.listener, 'utf8');
  const backend = Buffer.from(e.backend, 'utf8');
  if (!client || !local) throw new RangeError(`session entry addresses must be numeric IPs, got ${e.clientIp} and ${e.localIp}`);
  if (!Number.isInteger(e.clientPort) || e.clientPort < 1 || e.clientPort > 65535) throw new RangeError(`session entry client port must be 1-65535, got ${e.clientPort}`);
  if (listener.length < 1 || listener.length > 255 || backend.length < 1 || backend.length > 255) throw new RangeError('session entry names must be 1-255 bytes of UTF-8');
  const head = Buffer.from([e.kind === 'opened' ? 1 : 2, client.length === 4 ? 4 : 6]);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(e.clientPort);
  const localFamily = Buffer.from([local.length === 0 ? 0 : local.length === 4 ? 4 : 6]);
  return Buffer.concat([head, client, port, localFamily, local, Buffer.from([listener.length]), listener, Buffer.from([backend.length]), backend]);
}

/**
 * Packs `entries` into as few signed batches as fit maxBatchBytes each, numbered from `sequence`
 * up. An entry the wire cannot carry throws RangeError (the caller built it from its own state).
 */
export function encodeSessionBatches(entries: readonly SessionEntry[], header: { instance: string; sequence: number; timestamp: number }, key: Buffer): Buffer[] {
  if (!isInstanceId(header.instance)) throw new RangeError('session batch instance must be 16 lower-case hex digits');
  const out: Buffer[] = [];
  let parts: Buffer[] = [];
  let size = headerBytes + macBytes;
  const flush = () => {
    if (parts.length === 0) return;
    const head = Buffer.alloc(headerBytes);
    sessionBatchMagic.copy(head, 0);
    head.writeUInt8(sessionBatchVersion, 4);
    head.writeUInt16BE(parts.length, 6);
    head.write(header.instance, 8, 8, 'hex');
    head.writeBigUInt64BE(BigInt(header.sequence + out.length), 16);
    head.writeBigUInt64BE(BigInt(header.timestamp), 24);
    const signed = Buffer.concat([head, ...parts]);
    out.push(Buffer.concat([signed, createHmac('sha256', key).update(signed).digest()]));
    parts = [];
    size = headerBytes + macBytes;
  };
  for (const e of entries) {
    const b = entryBytes(e);
    if (size + b.length > maxBatchBytes || parts.length === 0xffff) flush();
    parts.push(b);
    size += b.length;
  }
  flush();
  return out;
}

export type BatchDecodeResult = { ok: true; header: SessionBatchHeader; entries: SessionEntry[] } | { ok: false; reason: 'malformed' | 'bad-version' | 'bad-mac' };

/** Checks shape, version and MAC, in that order, then reads the entries. Never throws. */
export function decodeSessionBatch(buf: Buffer, key: Buffer): BatchDecodeResult {
  if (buf.length < headerBytes + macBytes || !buf.subarray(0, 4).equals(sessionBatchMagic)) return { ok: false, reason: 'malformed' };
  if (buf.readUInt8(4) !== sessionBatchVersion) return { ok: false, reason: 'bad-version' };
  if (buf.length > maxBatchBytes) return { ok: false, reason: 'malformed' };
  const signed = buf.length - macBytes;
  // In constant time, as for heartbeats.
  if (!timingSafeEqual(createHmac('sha256', key).update(buf.subarray(0, signed)).digest(), buf.subarray(signed))) return { ok: false, reason: 'bad-mac' };
  const count = buf.readUInt16BE(6);
  const sequence = buf.readBigUInt64BE(16);
  const timestamp = buf.readBigUInt64BE(24);
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  if (count === 0 || sequence > limit || timestamp > limit) return { ok: false, reason: 'malformed' };
  const entries: SessionEntry[] = [];
  let at = headerBytes;
  // Every read is checked against `signed`: a key holder's bug must not make this throw.
  const take = (n: number): Buffer | undefined => {
    if (at + n > signed) return undefined;
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  const text = (): string | undefined => {
    const n = take(1)?.[0];
    const b = n ? take(n) : undefined;
    if (!b) return undefined;
    const s = b.toString('utf8');
    return Buffer.from(s, 'utf8').equals(b) ? s : undefined;
  };
  const address = (family: number | undefined): Buffer | undefined => (family === 4 ? take(4) : family === 6 ? take(16) : undefined);
  for (let i = 0; i < count; i++) {
    const kind = take(1)?.[0];
    const client = address(take(1)?.[0]);
    const port = take(2)?.readUInt16BE(0);
    const localFamily = take(1)?.[0];
    const local = localFamily === 0 ? Buffer.alloc(0) : address(localFamily);
    const listener = text();
    const backend = text();
    if ((kind !== 1 && kind !== 2) || !client || !port || !local || listener === undefined || backend === undefined) return { ok: false, reason: 'malformed' };
    entries.push({ kind: kind === 1 ? 'opened' : 'ended', clientIp: ipText(client), clientPort: port, localIp: local.length === 0 ? null : ipText(local), listener, backend });
  }
  if (at !== signed) return { ok: false, reason: 'malformed' };
  return { ok: true, header: { instance: buf.toString('hex', 8, 16), sequence: Number(sequence), timestamp: Number(timestamp) }, entries };
}
