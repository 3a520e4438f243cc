// UDP session replication without sockets: the batch codec (round trips, every refusal, the
// size bound) and the replicator over the fake engine (names out and slots in, the bounds on
// what waits and what leaves per flush, replays, own batches, stale timestamps, unknown listeners).

import { createHmac } from 'node:crypto';
import t from 'tap';
import { decodeSessionBatch, encodeSessionBatches, maxBatchBytes, sessionBatchVersion, type SessionEntry } from '../../lib/cluster/session-batch.js';
import { SessionReplicator, type SessionNames } from '../../lib/cluster/session-replicator.js';
import { SequenceWindow } from '../../lib/cluster/sequence-window.js';
import type { NativeSessionChange } from '../../lib/engine/native-types.js';
import { FakeEngine } from '../helpers/fake-engine.js';

const key = Buffer.alloc(32, 0x42);
const wall = 1_800_000_000_000;
const header = { instance: '00000000000000a1', sequence: 5, timestamp: wall };

const entry = (fields: Partial<SessionEntry> = {}): SessionEntry => ({ kind: 'opened', clientIp: '192.0.2.1', clientPort: 40000, localIp: null, listener: 'dns', backend: 's1', ...fields });

function resigned(buf: Buffer, edit: (b: Buffer) => void): Buffer {
  const out = Buffer.from(buf);
  edit(out);
  createHmac('sha256', key).update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}

t.test('codec: round trip, IPv4 and IPv6, with and without a local address', async (t) => {
  const entries = [
    entry(),
    entry({ kind: 'ended', clientPort: 1 }),
    entry({ clientIp: '2001:db8::7', clientPort: 65535, localIp: '2001:db8::10', listener: '[::]:53/udp', backend: 'ns-β' }),
    entry({ localIp: '192.0.2.10' }),
  ];
  const batches = encodeSessionBatches(entries, header, key);
  t.equal(batches.length, 1);
  t.equal(batches[0].toString('latin1', 0, 4), 'LB4S');
  t.equal(batches[0][4], sessionBatchVersion);
  t.same(decodeSessionBatch(batches[0], key), { ok: true, header, entries });
});

t.test('codec: many entries split into numbered batches, none over the size bound', async (t) => {
  const entries = Array.from({ length: 500 }, (_, i) => entry({ clientPort: 1000 + i, clientIp: '2001:db8::1', localIp: '2001:db8::2' }));
  const batches = encodeSessionBatches(entries, header, key);
  t.ok(batches.length > 1, `${batches.length} batches`);
  const back: SessionEntry[] = [];
  batches.forEach((b, i) => {
    t.ok(b.length <= maxBatchBytes, `batch ${i}: ${b.length} bytes`);
    const d = decodeSessionBatch(b, key);
    if (!d.ok) throw new Error(d.reason);
    t.equal(d.header.sequence, header.sequence + i, 'numbered in order');
    back.push(...d.entries);
  });
  t.same(back, entries, 'every entry, in order');
  t.same(encodeSessionBatches([], header, key), [], 'nothing to say: no batch');
  t.throws(() => encodeSessionBatches([entry({ clientIp: 'host' })], header, key), RangeError);
  t.throws(() => encodeSessionBatches([entry({ clientPort: 0 })], header, key), RangeError);
  t.throws(() => encodeSessionBatches([entry({ listener: '' })], header, key), RangeError);
  t.throws(() => encodeSessionBatches([entry()], { ...header, instance: 'xyz' }, key), RangeError);
});

t.test('codec: each way a datagram is refused', async (t) => {
  const [good] = encodeSessionBatches([entry(), entry({ clientPort: 2 })], header, key);
  const reason = (b: Buffer, k = key) => {
    const r = decodeSessionBatch(b, k);
    return r.ok ? 'ok' : r.reason;
  };
  t.equal(reason(good), 'ok');
  t.equal(reason(Buffer.alloc(0)), 'malformed');
  t.equal(reason(Buffer.from('LB4H a heartbeat, not a batch, padded to length........................')), 'malformed');
  t.equal(reason(resigned(good, (b) => (b[4] = 9))), 'bad-version');
  t.equal(reason(good, Buffer.alloc(32, 1)), 'bad-mac', 'another key');
  const flipped = Buffer.from(good);
  flipped[40] ^= 1;
  t.equal(reason(flipped), 'bad-mac', 'a changed entry, unsigned');
  t.equal(reason(resigned(good, (b) => b.writeUInt16BE(3, 6))), 'malformed', 'says 3 entries, holds 2');
  t.equal(reason(resigned(good, (b) => b.writeUInt16BE(1, 6))), 'malformed', 'says 1 entry, holds 2: bytes left over');
  t.equal(reason(resigned(good, (b) => b.writeUInt16BE(0, 6))), 'malformed', 'no entry');
  t.equal(reason(resigned(good, (b) => (b[32] = 3))), 'malformed', 'unknown kind');
  t.equal(reason(resigned(good, (b) => (b[33] = 5))), 'malformed', 'unknown address family');
  t.equal(reason(resigned(good, (b) => b.writeUInt16BE(0, 38))), 'malformed', 'client port 0');
  t.equal(reason(Buffer.concat([good, Buffer.alloc(maxBatchBytes)])), 'malformed', 'over the size bound');
});

/** Backend keys 1 and 2 are dns/s1 and dns/s2; listener "dns" is slot 0 here. */
const names: SessionNames = {
  backendOf: (k) => (k === 1 ? { listener: 'dns', backend: 's1' } : k === 2 ? { listener: 'dns', backend: 's2' } : undefined),
  slotOf: (name) => (name === 'dns' ? 0 : undefined),
  hasBackend: (slot, id) => slot === 0 && (id === 's1' || id === 's2'),
};

/** A fake engine with one UDP listener, "dns", in slot 0. */
function engineWithListener(): FakeEngine {
  const listener = { name: 'dns', protocol: 1, ip: '0.0.0.0', port: 53, dualStack: false, freeBind: false, backlog: 1, algorithm: 0, proxyProtocol: 0, acceptProxy: [] };
  const options = { workers: 1, listeners: [listener], connectTimeoutMs: 1000, idleTimeoutMs: 1000, retries: 1, pipeSize: 0, maxIdlePipes: 0, udpIdleTimeoutMs: 30000, udpResponses: 0, udpMaxSessions: 100, udpMaxDatagram: 1500, hashKey: 0, proxyHeaderTimeoutMs: 5000, udpProxyHeader: 0, sniTimeoutMs: 5000 };
  return new FakeEngine(options, () => ({ ip: '0.0.0.0', port: 53, family: 'IPv4' }));
}

function replicator(engine: FakeEngine, sent: Buffer[], o: { instance?: string; wallMs?: () => number; maxPending?: number; maxBatchesPerFlush?: number } = {}) {
  return new SessionReplicator({
    engine,
    names,
    key,
    instance: o.instance ?? '00000000000000a1',
    send: (d) => sent.push(d),
    clock: { monotonic: () => 0, wall: o.wallMs ?? (() => wall) },
    ...(o.maxPending === undefined ? {} : { maxPending: o.maxPending }),
    ...(o.maxBatchesPerFlush === undefined ? {} : { maxBatchesPerFlush: o.maxBatchesPerFlush }),
  });
}

const change = (port: number, backendKey = 1, opened = true): NativeSessionChange => ({ opened, listener: 0, backendKey, clientIp: '192.0.2.1', clientPort: port });

t.test('replicator: what the engine reports reaches the peer engine as hints', async (t) => {
  const active = engineWithListener();
  const backup = engineWithListener();
  const wire: Buffer[] = [];
  const out = replicator(active, wire);
  const into = replicator(backup, [], { instance: '00000000000000b2' });
  out.start();
  t.teardown(() => out.stop());
  t.ok(active.replicating, 'start() turns reporting on in the engine');
  active.sessionChanges.push(change(40000, 1), change(40001, 2), { ...change(40002, 1), localIp: '192.0.2.10' }, change(40003, 99));
  out.flush();
  t.equal(wire.length, 1, 'one batch');
  for (const d of wire) into.receive(d, { address: '192.0.2.2', port: 7000 });
  t.same(
    [...backup.affinity],
    [
      ['0 192.0.2.1 40000 ', 'dns/s1'],
      ['0 192.0.2.1 40001 ', 'dns/s2'],
      ['0 192.0.2.1 40002 192.0.2.10', 'dns/s1'],
    ],
    "each client's backend, by the backup's slot and the backend's stable id; a backend removed since is skipped",
  );
  active.sessionChanges.push(change(40001, 2, false));
  out.flush();
  into.receive(wire[1], { address: '192.0.2.2', port: 7000 });
  t.notOk(backup.affinity.has('0 192.0.2.1 40001 '), 'an ended session takes its hint away');
  t.match(out.stats(), { sent: 4, dropped: 0 });
  out.resync();
  t.equal(active.resends, 1, 'resync() asks the engine to report every live session again');
  t.match(into.stats(), { received: 4, installed: 3, hints: 2, unknownListener: 0 });
  out.stop();
  t.notOk(active.replicating, 'stop() turns it off');
  out.resync();
  t.equal(active.resends, 1, 'and a stopped replicator asks for nothing');
});

t.test('replicator: own, replayed, stale and forged batches install nothing, and are counted', async (t) => {
  const backup = engineWithListener();
  let now = wall;
  const into = replicator(backup, [], { instance: '00000000000000b2', wallMs: () => now });
  const from = { address: '192.0.2.2', port: 7000 };
  const wire: Buffer[] = [];
  const peerEngine = engineWithListener();
  const peer = replicator(peerEngine, wire);
  const selfEngine = engineWithListener();
  const self = replicator(selfEngine, wire, { instance: '00000000000000b2' });
  /** One batch from `r` saying client port `port` opened a session. */
  const batch = (r: SessionReplicator, engine: FakeEngine, port: number) => {
    engine.sessionChanges.push(change(port));
    r.flush();
    return wire.at(-1)!;
  };
  const first = batch(peer, peerEngine, 1);
  into.receive(first, from);
  into.receive(first, from);
  t.equal(into.stats().rejected.replayed, 1, 'the same batch twice: replayed');
  into.receive(batch(self, selfEngine, 2), from);
  t.equal(into.stats().rejected['own-batch'], 1, "this node's own batch, looped back");
  const later = batch(peer, peerEngine, 3);
  now = wall + 2001;
  into.receive(later, from);
  t.equal(into.stats().rejected.timestamp, 1, 'older than the window');
  now = wall;
  into.receive(later, from);
  const forged = Buffer.from(batch(peer, peerEngine, 4));
  forged[forged.length - 40] ^= 1;
  into.receive(forged, from);
  t.equal(into.stats().rejected['bad-mac'], 1);
  into.receive(Buffer.from('LB4S garbage'), from);
  t.equal(into.stats().rejected.malformed, 1);
  t.same([...backup.affinity.keys()], ['0 192.0.2.1 1 ', '0 192.0.2.1 3 '], 'only the authentic, fresh, first deliveries installed');
  const [early, late] = [batch(peer, peerEngine, 5), batch(peer, peerEngine, 6)];
  into.receive(late, from);
  into.receive(early, from);
  t.ok(backup.affinity.has('0 192.0.2.1 5 ') && backup.affinity.has('0 192.0.2.1 6 '), 'a batch the network delivered after a later one is still taken');
  t.equal(into.stats().rejected.replayed, 1, 'and not counted as a replay');
});

t.test('replicator: bounded waiting, bounded sending, unknown listeners', async (t) => {
  const engine = engineWithListener();
  const wire: Buffer[] = [];
  const out = replicator(engine, wire, { maxPending: 100, maxBatchesPerFlush: 2 });
  for (let i = 0; i < 150; i++) engine.sessionChanges.push(change(1000 + i));
  engine.droppedSessionChanges = 7;
  out.flush();
  t.equal(wire.length, 2, 'at most two batches per flush');
  const first = decodeSessionBatch(wire[0], key);
  if (!first.ok) throw new Error(first.reason);
  t.equal(first.entries[0].clientPort, 1050, 'the oldest 50 were dropped to keep 100 waiting');
  const stats = out.stats();
  t.equal(stats.dropped, 50 + 7, "dropped here and in the engine's queue");
  const carried = wire.reduce((n, b) => n + b.readUInt16BE(6), 0);
  t.equal(stats.sent, carried);
  while (wire.length < 100 && out.stats().sent < 100) out.flush();
  t.equal(out.stats().sent, 100, 'the rest leaves over the next flushes');

  const other = engineWithListener();
  const into = new SessionReplicator({ engine: other, names: { ...names, slotOf: () => undefined }, key, instance: '00000000000000c3', send: () => {}, clock: { monotonic: () => 0, wall: () => wall } });
  into.receive(wire[0], { address: '192.0.2.2', port: 7000 });
  t.match(into.stats(), { received: first.entries.length, installed: 0, unknownListener: first.entries.length });
  t.equal(other.affinity.size, 0);
});

t.test('session starts naming a backend this node does not have are counted and not installed', async (t) => {
  const wire: Buffer[] = [];
  const wall = 1_700_000_000_000;
  const engine = engineWithListener();
  const out = new SessionReplicator({ engine, names, key, instance: '00000000000000d4', send: (b) => wire.push(b), clock: { monotonic: () => 0, wall: () => wall } });
  // Keys 1 and 2 are s1 and s2 on the sender; the receiver has only s1.
  engine.sessionChanges.push(change(4001, 1), change(4002, 2));
  out.flush();
  const other = engineWithListener();
  const onlyS1: SessionNames = { ...names, hasBackend: (slot, id) => slot === 0 && id === 's1' };
  const into = new SessionReplicator({ engine: other, names: onlyS1, key, instance: '00000000000000d5', send: () => {}, clock: { monotonic: () => 0, wall: () => wall } });
  for (const b of wire) into.receive(b, { address: '192.0.2.2', port: 7000 });
  t.match(into.stats(), { received: 2, installed: 1, unknownBackend: 1 }, 'the s2 start is counted, the s1 one installed');
  t.equal(other.affinity.size, 1, 'one hint, for the backend this node has');
});

t.test('sequence window: each number once, late ones within 32 of the highest', async (t) => {
  const w = new SequenceWindow();
  const take = (...seqs: number[]) => seqs.map((n) => w.accept(n));
  t.same(take(5, 5), [true, false], 'the first number, then itself again');
  t.same(take(7, 6, 6), [true, true, false], 'one delivered late is taken once');
  t.same(take(4, 3), [true, true], 'below the first, within the window');
  t.same(take(40), [true]);
  t.same(take(8, 7, 39, 39), [true, false, true, false], '32 below the highest is the edge; 7 was seen');
  t.same(take(7 + 0), [false]);
  t.same(take(72), [true], 'a jump of exactly 32');
  t.same(take(40, 41, 71), [false, true, true], 'the old highest is still known as seen; the ones between are new');
  t.same(take(41), [false], 'and remembered once taken');
  t.same(take(1000, 968, 967), [true, true, false], 'after a long jump only the last 32 are open');
  t.same(take(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, 999), [false, true, true, false]);
});