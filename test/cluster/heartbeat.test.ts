// The heartbeat as bytes and as a receiver judges it: encode/decode round trips, every reason a
// datagram is refused (malformed, bad-version, bad-mac, own-heartbeat, timestamp, replayed), the
// restart rule (a new epoch is taken with a lower sequence), and the shared key's loading rules.
// No sockets.

import { createHmac } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { clusterKeyEnv, loadClusterKey, parseClusterKey, readClusterKeyFile } from '../../lib/cluster/cluster-key.js';
import { HeartbeatFilter } from '../../lib/cluster/heartbeat-filter.js';
import { decodeHeartbeat, encodeHeartbeat, heartbeatVersion, isInstanceId, newInstanceId, rejectReasons, type Heartbeat } from '../../lib/cluster/heartbeat.js';
import { Lb4Error } from '../../lib/errors.js';

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 8);
const wall = 1_800_000_000_000;

function hb(fields: Partial<Heartbeat> = {}): Heartbeat {
  return { nodeId: 'lb-a', instance: '0123456789abcdef', priority: 150, state: 'active', healthyBackends: 3, generation: 42, epoch: wall - 60_000, sequence: 7, timestamp: wall, leaving: false, ...fields };
}

/** Changes bytes of a signed heartbeat and signs it again, as a key holder could. */
function resigned(buf: Buffer, edit: (b: Buffer) => void, k = key): Buffer {
  const out = Buffer.from(buf);
  edit(out);
  createHmac('sha256', k).update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}

t.test('codec: round trip of every field', async (t) => {
  for (const fields of [
    hb(),
    hb({ leaving: true, state: 'init', priority: 1, healthyBackends: 0, generation: 0, sequence: 0 }),
    hb({ state: 'fault', priority: 255, healthyBackends: 0xffff_ffff, generation: 0xffff_ffff, sequence: Number.MAX_SAFE_INTEGER }),
    hb({ state: 'backup', nodeId: 'nœud-β' }),
    hb({ nodeId: 'x'.repeat(255) }),
    hb({ instance: '0000000000000000' }),
    hb({ instance: 'ffffffffffffffff' }),
  ]) {
    const buf = encodeHeartbeat(fields, key);
    t.equal(buf.length, 49 + Buffer.byteLength(fields.nodeId) + 32, 'length is header + id + MAC');
    t.equal(buf.toString('latin1', 0, 4), 'LB4H');
    t.equal(buf[4], heartbeatVersion);
    t.same(decodeHeartbeat(buf, key), { ok: true, heartbeat: fields });
  }
});

t.test('codec: encode refuses what the wire cannot carry', async (t) => {
  t.throws(() => encodeHeartbeat(hb({ nodeId: '' }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ nodeId: 'x'.repeat(256) }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ priority: 0 }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ priority: 256 }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ healthyBackends: -1 }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ generation: 2 ** 32 }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ sequence: 1.5 }), key), RangeError);
  t.throws(() => encodeHeartbeat(hb({ state: 'leader' as never }), key), RangeError);
});

t.test('codec: each way a datagram is refused before the fields are believed', async (t) => {
  const good = encodeHeartbeat(hb(), key);
  const reason = (buf: Buffer, k = key) => {
    const r = decodeHeartbeat(buf, k);
    return r.ok ? 'ok' : r.reason;
  };
  t.equal(reason(good), 'ok');
  t.equal(reason(Buffer.alloc(0)), 'malformed', 'empty');
  t.equal(reason(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'malformed', 'not a heartbeat');
  t.equal(reason(good.subarray(0, 60)), 'malformed', 'truncated');
  t.equal(reason(Buffer.concat([good, Buffer.from([0])])), 'malformed', 'a byte too many');
  t.equal(reason(resigned(good, (b) => (b[0] = 0x58))), 'malformed', 'wrong magic');
  t.equal(reason(resigned(good, (b) => (b[48] = 0))), 'malformed', 'zero-length node id');
  t.equal(reason(resigned(good, (b) => (b[6] = 9))), 'malformed', 'unknown state, even when signed');
  t.equal(reason(resigned(good, (b) => (b[7] = 0))), 'malformed', 'priority 0, even when signed');
  t.equal(reason(resigned(good, (b) => b.writeBigUInt64BE(2n ** 60n, 24))), 'malformed', 'sequence beyond a safe integer');
  t.equal(reason(resigned(good, (b) => b.fill(0xff, 49, 51))), 'malformed', 'node id not UTF-8');
  t.equal(reason(resigned(good, (b) => (b[4] = 1))), 'bad-version', 'version 1 (before the instance id), even when signed');
  t.equal(reason(good, otherKey), 'bad-mac', 'another key');
  const flipped = Buffer.from(good);
  flipped[20] ^= 1; // the epoch, without signing again
  t.equal(reason(flipped), 'bad-mac', 'a changed field');
  const badMac = Buffer.from(good);
  badMac[badMac.length - 1] ^= 0x80;
  t.equal(reason(badMac), 'bad-mac', 'a changed MAC');
  const unknownFlag = resigned(good, (b) => (b[5] |= 0x80));
  t.match(decodeHeartbeat(unknownFlag, key), { ok: true, heartbeat: { leaving: false } }, 'an unknown flag bit is ignored');
});

t.test('filter: own heartbeat, timestamp window, replays, restarts', async (t) => {
  const filter = new HeartbeatFilter({ nodeId: 'lb-b', instance: 'bbbbbbbbbbbbbbbb', key, timestampWindowMs: 2000 });
  let mono = 1000;
  const accept = (fields: Partial<Heartbeat>, at = wall) => {
    const r = filter.accept(encodeHeartbeat(hb(fields), key), { wall: at, monotonic: mono });
    return r.ok ? (r.restarted ? 'restarted' : 'ok') : r.reason;
  };
  t.equal(accept({ nodeId: 'lb-b', instance: 'bbbbbbbbbbbbbbbb' }), 'own-heartbeat', "a heartbeat with this process's instance id is its own, looped back");
  t.equal(accept({ nodeId: 'lb-a', instance: 'bbbbbbbbbbbbbbbb', sequence: 1 }), 'own-heartbeat', 'whatever node id it carries');
  t.equal(accept({ sequence: 1, timestamp: wall - 2001 }), 'timestamp', 'too old');
  t.equal(accept({ sequence: 1, timestamp: wall + 2001 }), 'timestamp', 'too far ahead');
  t.equal(accept({ sequence: 1, timestamp: wall - 2000 }), 'ok', 'at the edge of the window');
  t.equal(accept({ sequence: 1 }), 'replayed', 'the same sequence again');
  t.equal(accept({ sequence: 0 }), 'replayed', 'a lower sequence');
  t.equal(accept({ sequence: 2 }), 'ok');
  t.equal(accept({ sequence: 5 }), 'ok', 'gaps are fine: heartbeats get lost');
  t.equal(accept({ sequence: 9, epoch: wall - 120_000 }), 'replayed', 'a heartbeat from an earlier start');
  t.equal(accept({ sequence: 0, epoch: wall - 1000 }), 'restarted', 'a later epoch with sequence 0: the peer restarted');
  t.equal(accept({ sequence: 6 }), 'replayed', 'the old start is over');
  t.equal(accept({ sequence: 1, epoch: wall - 1000 }), 'ok');
  t.equal(accept({ nodeId: 'lb-c', sequence: 0 }), 'ok', 'each sender has its own record');

  // The peer restarts with its clock set back: its epoch is lower than the one remembered.
  mono += 3999;
  t.equal(accept({ sequence: 0, epoch: wall - 5000 }), 'replayed', 'refused while the old record is fresh');
  mono += 2;
  t.equal(accept({ sequence: 0, epoch: wall - 5000 }), 'ok', 'taken once the sender was silent for twice the window');

  const withKey = new HeartbeatFilter({ nodeId: 'lb-b', instance: 'bbbbbbbbbbbbbbbb', key, timestampWindowMs: 2000 });
  const r = withKey.accept(encodeHeartbeat(hb(), otherKey), { wall, monotonic: 0 });
  t.same(r, { ok: false, reason: 'bad-mac' });
  t.same([...rejectReasons], ['malformed', 'bad-version', 'bad-mac', 'own-heartbeat', 'timestamp', 'replayed']);
});

t.test('filter: a peer with this node id but another instance is a peer, flagged', async (t) => {
  // Two nodes cloned from one image: both "lb", each with its own random instance.
  const filter = new HeartbeatFilter({ nodeId: 'lb', instance: newInstanceId(), key, timestampWindowMs: 2000 });
  const twin = filter.accept(encodeHeartbeat(hb({ nodeId: 'lb', instance: 'fedcba9876543210' }), key), { wall, monotonic: 0 });
  t.match(twin, { ok: true, duplicateNodeId: true, heartbeat: { nodeId: 'lb', instance: 'fedcba9876543210' } }, 'accepted as the peer, and flagged');
  const replay = filter.accept(encodeHeartbeat(hb({ nodeId: 'lb', instance: 'fedcba9876543210' }), key), { wall, monotonic: 1 });
  t.same(replay, { ok: false, reason: 'replayed' }, 'its replays are still refused');
  const other = filter.accept(encodeHeartbeat(hb({ nodeId: 'lb-c', sequence: 0 }), key), { wall, monotonic: 2 });
  t.match(other, { ok: true, duplicateNodeId: false }, 'a peer with its own id is not flagged');
  const ids = new Set(Array.from({ length: 1000 }, () => newInstanceId()));
  t.equal(ids.size, 1000, 'instance ids differ from one draw to the next');
  t.ok([...ids].every(isInstanceId), 'and are 16 lower-case hex digits');
  t.throws(() => encodeHeartbeat(hb({ instance: 'ABCDEF0123456789' }), key), RangeError, 'encode refuses an instance id that is not lower-case hex');
  t.throws(() => encodeHeartbeat(hb({ instance: '1234' }), key), RangeError, 'or not 16 digits');
});

t.test('key: from a file, from the environment, and every refusal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Buffer, mode = 0o600) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    chmodSync(p, mode);
    return p;
  };
  const hex = 'ab'.repeat(32);
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      t.type(err, Lb4Error);
      t.equal((err as Lb4Error).code, 'LB4_INVALID_OPTION');
      return (err as Error).message;
    }
    return 'accepted';
  };

  t.same(readClusterKeyFile(file('hex', `${hex}\n`)), Buffer.alloc(32, 0xab), '64 hex characters and a newline are 32 bytes');
  t.same(readClusterKeyFile(file('HEX', hex.toUpperCase())), Buffer.alloc(32, 0xab), 'upper-case hex');
  t.equal(readClusterKeyFile(file('long-hex', 'cd'.repeat(64))).length, 64, 'longer hex keys are fine');
  const raw = Buffer.from([...Array(40).keys()].map((i) => (i * 37 + 101) & 0xff));
  t.same(readClusterKeyFile(file('raw', raw)), raw, 'raw bytes (not hex) are taken as they are');
  t.same(readClusterKeyFile(file('owner-only', hex, 0o400)), Buffer.alloc(32, 0xab), 'mode 400');
  const link = join(dir, 'link');
  symlinkSync(file('target', hex), link);
  t.same(readClusterKeyFile(link), Buffer.alloc(32, 0xab), 'a symbolic link is followed, and its target checked');

  t.match(refusal(() => readClusterKeyFile(file('group', hex, 0o640))), /mode 640: it must not be readable or writable by group or others \(chmod 600/);
  t.match(refusal(() => readClusterKeyFile(file('world', hex, 0o604))), /mode 604/);
  t.match(refusal(() => readClusterKeyFile(file('group-write', hex, 0o620))), /mode 620/);
  t.match(refusal(() => readClusterKeyFile(join(dir, 'link-open'))), /does not exist/);
  symlinkSync(file('target-open', hex, 0o644), join(dir, 'link-open'));
  t.match(refusal(() => readClusterKeyFile(join(dir, 'link-open'))), /mode 644/, 'a link to an open file is refused too');
  t.match(refusal(() => readClusterKeyFile(join(dir, 'missing'))), /cluster key file .*missing does not exist/);
  mkdirSync(join(dir, 'dir'), { mode: 0o700 });
  t.match(refusal(() => readClusterKeyFile(join(dir, 'dir'))), /is not a regular file/);
  t.match(refusal(() => readClusterKeyFile(file('short-hex', 'ab'.repeat(20)))), /too short: 40 hex characters are 20 bytes; it needs at least 32 bytes/);
  t.match(refusal(() => readClusterKeyFile(file('short-raw', 'x'.repeat(31)))), /too short: 31 bytes/);
  t.match(refusal(() => readClusterKeyFile(file('empty', '\n'))), /empty/);
  t.equal(refusal(() => parseClusterKey(Buffer.from('y'.repeat(32)), 'x')), 'accepted', '32 raw bytes are enough');

  const env = { [clusterKeyEnv]: hex };
  t.same(loadClusterKey({ env }), Buffer.alloc(32, 0xab), 'from LB4_CLUSTER_KEY');
  t.same(loadClusterKey({ keyFile: file('wins', 'cd'.repeat(32)), env }), Buffer.alloc(32, 0xcd), 'a key file wins over the environment');
  t.match(refusal(() => loadClusterKey({ env: { [clusterKeyEnv]: 'short' } })), /^LB4_CLUSTER_KEY: the cluster key is too short/);
  t.match(refusal(() => loadClusterKey({ env: {} })), /needs a shared key: give --cluster-key-file FILE or set LB4_CLUSTER_KEY/);
});
