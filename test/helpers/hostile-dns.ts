// A small DNS server on 127.0.0.1 (UDP) for answers a real server will not give: thousands of
// records, addresses no backend can have, records of other names in the answer, SRV port 0.
// It answers from a zone the test changes at any time, and counts the queries it got.

import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';

export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  /** "." is the root name: the service is not available here. */
  readonly target: string;
}

export interface HostileName {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  readonly SRV?: readonly SrvRecord[];
  /** A records put in the answer under another owner name than the question's. */
  readonly foreignA?: ReadonlyArray<readonly [owner: string, address: string]>;
}

export interface HostileDns {
  /** `127.0.0.1:PORT`, as lb4's dnsServers takes it. */
  readonly server: string;
  /** Names (lower case, no trailing dot) and their records; change it at will. */
  zone: Record<string, HostileName>;
  /** Every record's TTL, in seconds. */
  ttl: number;
  /** Queries received since start, by type and name (`A app.t`). */
  readonly queries: string[];
  close(): Promise<void>;
}

function readName(buf: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let off = start;
  while (buf[off] !== 0) {
    labels.push(buf.subarray(off + 1, off + 1 + buf[off]).toString('latin1'));
    off += 1 + buf[off];
  }
  return { name: labels.join('.'), end: off + 1 };
}

function encodeName(name: string): Buffer {
  const labels = name === '.' || name === '' ? [] : name.replace(/\.$/, '').split('.');
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

function record(owner: Buffer, type: number, ttl: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([owner, fixed, data]);
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split('::');
  const a = head ? head.split(':') : [];
  const b = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export async function startHostileDns(zone: Record<string, HostileName> = {}): Promise<HostileDns> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  const state: HostileDns = {
    server: '',
    zone,
    ttl: 30,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    const { name, end } = readName(query, 12);
    const type = query.readUInt16BE(end);
    queries.push(`${type === 1 ? 'A' : type === 28 ? 'AAAA' : type === 33 ? 'SRV' : type} ${name}`);
    const records = state.zone[name.toLowerCase()] ?? {};
    const asked = Buffer.from([0xc0, 12]); // a pointer to the question's name
    const answers: Buffer[] = [];
    if (type === 1) {
      for (const ip of records.A ?? []) answers.push(record(asked, 1, state.ttl, Buffer.from(ip.split('.').map(Number))));
      for (const [owner, ip] of records.foreignA ?? []) answers.push(record(encodeName(owner), 1, state.ttl, Buffer.from(ip.split('.').map(Number))));
    }
    if (type === 28) for (const ip of records.AAAA ?? []) if (net.isIPv6(ip)) answers.push(record(asked, 28, state.ttl, ipv6Bytes(ip)));
    if (type === 33) {
      for (const s of records.SRV ?? []) {
        const fixed = Buffer.alloc(6);
        fixed.writeUInt16BE(s.priority, 0);
        fixed.writeUInt16BE(s.weight, 2);
        fixed.writeUInt16BE(s.port, 4);
        answers.push(record(asked, 33, state.ttl, Buffer.concat([fixed, encodeName(s.target)])));
      }
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0);
    // A response, authoritative, the query's "recursion desired" echoed; NXDOMAIN for an unknown name.
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (name.toLowerCase() in state.zone ? 0 : 3), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, query.subarray(12, end + 4), ...answers]), peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return Object.assign(state, { server: `127.0.0.1:${socket.address().port}` });
}
