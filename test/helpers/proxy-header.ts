// A small PROXY protocol reader and writer for the tests, written apart from lb4's own (C++)
// parser and writer so that each checks the other: v1 lines and v2 TCP4/TCP6/UDP4/UDP6 headers;
// of the TLVs only PP2_TYPE_UNIQUE_ID is read, the others skipped.

import net from 'node:net';
import { startBackend, type TestBackend } from './sockets.js';

export interface ParsedHeader {
  version: 1 | 2;
  /** 'TCP4', 'TCP6', 'UDP4', 'UDP6' (v2 only), or 'LOCAL' / 'UNKNOWN' when the header names no addresses. */
  family: 'TCP4' | 'TCP6' | 'UDP4' | 'UDP6' | 'LOCAL' | 'UNKNOWN';
  source?: string;
  sourcePort?: number;
  destination?: string;
  destinationPort?: number;
  /** v2: the PP2_TYPE_UNIQUE_ID TLV's value, when the header has one. */
  uniqueId?: string;
  /** The header's length in bytes: the payload starts after it. */
  length: number;
}

/** The unique id TLV (type 0x05) among the TLVs in `tlvs`, if any. */
function uniqueIdOf(tlvs: Buffer): { uniqueId?: string } {
  for (let at = 0; at + 3 <= tlvs.length; ) {
    const type = tlvs[at];
    const length = tlvs.readUInt16BE(at + 1);
    if (type === 0x05) return { uniqueId: tlvs.subarray(at + 3, at + 3 + length).toString('latin1') };
    at += 3 + length;
  }
  return {};
}

const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** The header at the start of `data`, or null when there is none (or not all of it). */
export function parseHeader(data: Buffer): ParsedHeader | null {
  if (data.subarray(0, 6).toString('latin1') === 'PROXY ') {
    const end = data.indexOf('\r\n');
    if (end < 0) return null;
    const fields = data.subarray(6, end).toString('latin1').split(' ');
    if (fields[0] === 'UNKNOWN') return { version: 1, family: 'UNKNOWN', length: end + 2 };
    const [family, source, destination, sourcePort, destinationPort] = fields;
    if (family !== 'TCP4' && family !== 'TCP6') return null;
    return { version: 1, family, source, destination, sourcePort: Number(sourcePort), destinationPort: Number(destinationPort), length: end + 2 };
  }
  if (data.length < 16 || !data.subarray(0, 12).equals(signature)) return null;
  const length = 16 + data.readUInt16BE(14);
  if (data.length < length) return null;
  if ((data[12] & 0x0f) === 0) return { version: 2, family: 'LOCAL', length };
  const a = data.subarray(16);
  if (data[13] === 0x11 || data[13] === 0x12) {
    const family = data[13] === 0x11 ? 'TCP4' : 'UDP4';
    const tlvs = uniqueIdOf(data.subarray(16 + 12, length));
    return { version: 2, family, source: ip(a.subarray(0, 4)), destination: ip(a.subarray(4, 8)), sourcePort: a.readUInt16BE(8), destinationPort: a.readUInt16BE(10), ...tlvs, length };
  }
  if (data[13] === 0x21 || data[13] === 0x22) {
    const family = data[13] === 0x21 ? 'TCP6' : 'UDP6';
    const tlvs = uniqueIdOf(data.subarray(16 + 36, length));
    return { version: 2, family, source: ip(a.subarray(0, 16)), destination: ip(a.subarray(16, 32)), sourcePort: a.readUInt16BE(32), destinationPort: a.readUInt16BE(34), ...tlvs, length };
  }
  return { version: 2, family: 'UNKNOWN', length };
}

function ip(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16));
  // Canonical text through the socket address parser: `new net.SocketAddress` normalises it.
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/** A v1 line: `PROXY TCP4 src dst sport dport\r\n`. */
export function v1Header(source: string, sourcePort: number, destination: string, destinationPort: number): Buffer {
  const family = net.isIPv6(source) ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`, 'latin1');
}

/** A v2 PROXY (or LOCAL) header over TCP4. */
export function v2Header(source: string, sourcePort: number, destination: string, destinationPort: number, command: 'proxy' | 'local' = 'proxy'): Buffer {
  const head = Buffer.alloc(16 + 12);
  signature.copy(head, 0);
  head[12] = command === 'proxy' ? 0x21 : 0x20;
  head[13] = 0x11;
  head.writeUInt16BE(12, 14);
  Buffer.from(source.split('.').map(Number)).copy(head, 16);
  Buffer.from(destination.split('.').map(Number)).copy(head, 20);
  head.writeUInt16BE(sourcePort, 24);
  head.writeUInt16BE(destinationPort, 26);
  return head;
}

export interface Received {
  header: ParsedHeader | null;
  /** Everything after the header (all of it when there is none). */
  payload: Buffer;
}

/**
 * A backend that keeps what each connection sent until its end, split into header and payload,
 * and answers `ok` then. `next()` resolves the records one at a time, in the order the connections ended.
 */
export async function recordingBackend(): Promise<TestBackend & { next(): Promise<Received>; records: Received[] }> {
  const records: Received[] = [];
  const waiting = new Map<number, (r: Received) => void>();
  const backend = await startBackend((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => {
      const data = Buffer.concat(chunks);
      const header = parseHeader(data);
      const record = { header, payload: header ? data.subarray(header.length) : data };
      records.push(record);
      waiting.get(records.length - 1)?.(record);
      socket.end('ok');
    });
  });
  let taken = 0;
  return Object.assign(backend, {
    records,
    next(): Promise<Received> {
      const i = taken++;
      if (i < records.length) return Promise.resolve(records[i]);
      return new Promise<Received>((resolve) => waiting.set(i, resolve));
    },
  });
}
