// A model-based test of the TCP data plane: fast-check generates random interleavings of writes,
// half-closes, resets and pauses from both ends of flows, drives them through lb4 with real
// sockets, and checks what each end sees against the model of a transparent byte stream:
//
// - bytes arrive complete and in order, each direction on its own (checked at every settle
//   point and at the end);
// - a FIN reaches the other end after the last byte, and the other direction keeps working;
// - a reset by one end closes the other end (end or ECONNRESET), which by then holds a prefix of
//   what was sent that includes every byte already settled before the reset;
// - every flow leaves lb4's flow table afterwards.
//
// `npm test` runs a short pass; LB4_FLOW_MODEL_RUNS raises it (npm run fuzz does).

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { startBackend, until, within, type TestBackend } from '../helpers/sockets.js';

const runs = Number(process.env.LB4_FLOW_MODEL_RUNS ?? 60);
const SETTLE_MS = 10_000;

type Side = 'client' | 'backend';
type Op =
  | { kind: 'write'; side: Side; size: number }
  | { kind: 'end'; side: Side }
  | { kind: 'reset'; side: Side }
  | { kind: 'settle' };

const side = fc.constantFrom<Side>('client', 'backend');
const size = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 1_500 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1_501, max: 70_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 70_001, max: 1_100_000 }) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), side, size }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('end' as const), side }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), side }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'settle' as const }) },
);
const script = fc.array(op, { minLength: 1, maxLength: 12 });

/** One end of a flow as the test sees it: what it sent, what it received, how it closed. */
class End {
  readonly sent: Buffer[] = [];
  sentLength = 0;
  readonly received: Buffer[] = [];
  receivedLength = 0;
  ended = false; // this end sent FIN
  sawEnd = false; // this end received FIN
  sawReset = false;
  closed = false;
  unexpectedError: Error | undefined;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      this.receivedLength += chunk.length;
    });
    socket.on('end', () => (this.sawEnd = true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') this.sawReset = true;
      else this.unexpectedError = err;
    });
    socket.on('close', () => (this.closed = true));
  }
  write(bytes: Buffer): void {
    this.sent.push(bytes);
    this.sentLength += bytes.length;
    this.socket.write(bytes);
  }
}

/** The backend side: pairs each accepted connection with its flow by a 4-byte flow number. */
class FlowBackends {
  private readonly waiting = new Map<number, (socket: net.Socket) => void>();
  backend!: TestBackend;
  async start(): Promise<void> {
    this.backend = await startBackend(
      (socket) => {
        socket.once('readable', function readId(this: net.Socket) {
          const id = socket.read(4) as Buffer | null;
          if (!id) return void socket.once('readable', readId);
          socket.pause();
          const deliver = waitingFor(id.readUInt32BE(0));
          deliver(socket);
        });
      },
      { allowHalfOpen: true },
    );
    const waitingFor = (id: number) => {
      const resolve = this.waiting.get(id);
      if (!resolve) throw new Error(`backend got an unknown flow number ${id}`);
      this.waiting.delete(id);
      return resolve;
    };
  }
  expect(id: number): Promise<net.Socket> {
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }
}

let nextFlowId = 1;

async function runFlow(lb: Balancer, backends: FlowBackends, ops: Op[]): Promise<void> {
  const id = nextFlowId++;
  const accepted = backends.expect(id);
  const clientSocket = net.connect({ port: lb.address().port, host: '127.0.0.1', allowHalfOpen: true });
  const client = new End(clientSocket);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(id);
  clientSocket.write(header);
  const backendSocket = await within(accepted, SETTLE_MS, `flow ${id} to reach the backend`);
  const backend = new End(backendSocket);
  backendSocket.resume();
  const ends: Record<Side, End> = { client, backend };
  const other = (s: Side): End => (s === 'client' ? backend : client);
  // Bytes each receiver is known to hold: everything sent up to the last settle point.
  const settled: Record<Side, number> = { client: 0, backend: 0 };
  let resetBy: Side | undefined;

  const settle = async (what: string) => {
    for (const s of ['client', 'backend'] as const) {
      const from = ends[s];
      const to = other(s);
      await until(() => to.receivedLength >= from.sentLength && (!from.ended || to.sawEnd), SETTLE_MS, `${what}: ${s} bytes and FIN to arrive`);
      settled[s === 'client' ? 'backend' : 'client'] = to.receivedLength;
    }
    checkStreams('settle');
  };
  const checkStreams = (when: string) => {
    for (const s of ['client', 'backend'] as const) {
      const error = ends[s].unexpectedError;
      if (error) throw new Error(`${when}: the ${s} socket failed: ${error.message}`);
      const sent = Buffer.concat(ends[s].sent);
      const got = Buffer.concat(other(s).received);
      if (got.length > sent.length || !got.equals(sent.subarray(0, got.length))) {
        throw new Error(`${when}: bytes from the ${s} arrived corrupted (${got.length} received of ${sent.length} sent)`);
      }
    }
  };

  for (const step of ops) {
    if (resetBy) break;
    if (step.kind === 'settle') {
      await settle(`flow ${id}`);
    } else if (step.kind === 'write') {
      if (!ends[step.side].ended) ends[step.side].write(randomBytes(step.size));
    } else if (step.kind === 'end') {
      if (!ends[step.side].ended) {
        ends[step.side].ended = true;
        ends[step.side].socket.end();
      }
    } else {
      resetBy = step.side;
      // Node can send an RST only before its own FIN (libuv refuses after a shutdown); after
      // it, a close is what an application can do: the kernel resets if unread bytes remain.
      if (ends[step.side].ended) ends[step.side].socket.destroy();
      else ends[step.side].socket.resetAndDestroy();
    }
  }

  if (resetBy) {
    // The other end learns of the reset (a FIN or ECONNRESET) and holds a prefix of the bytes
    // the resetting end sent, at least what was settled before.
    const survivor = other(resetBy);
    await until(() => survivor.sawEnd || survivor.sawReset || survivor.closed, SETTLE_MS, `flow ${id}: the ${resetBy} reset to reach the other end`);
    checkStreams('after a reset');
    const held = survivor.receivedLength;
    const mustHold = settled[resetBy === 'client' ? 'backend' : 'client'];
    if (held < mustHold) throw new Error(`flow ${id}: ${held} bytes reached the ${resetBy === 'client' ? 'backend' : 'client'}, fewer than the ${mustHold} settled before the reset`);
    survivor.socket.destroy();
  } else {
    // A clean finish: both ends close their side; everything arrives exactly, both FINs too.
    for (const s of ['client', 'backend'] as const) {
      if (!ends[s].ended) {
        ends[s].ended = true;
        ends[s].socket.end();
      }
    }
    await settle(`flow ${id} at the end`);
    for (const s of ['client', 'backend'] as const) {
      if (ends[s].sawReset) throw new Error(`flow ${id}: the ${s} was reset though nobody reset`);
    }
    await until(() => client.closed && backend.closed, SETTLE_MS, `flow ${id}: both sockets to close`);
  }
}

t.test('random writes, half-closes and resets from both ends match a byte-stream model', async (t) => {
  const backends = new FlowBackends();
  await backends.start();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backends.backend.address], workers: 2 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backends.backend.close();
  });
  let flows = 0;
  // Flows one at a time, then several at once so their events interleave inside the workers.
  await fc.assert(
    fc.asyncProperty(script, async (ops) => {
      await runFlow(lb, backends, ops);
      flows++;
    }),
    { numRuns: runs, endOnFailure: process.env.LB4_FLOW_MODEL_SHRINK !== '1' },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(script, { minLength: 2, maxLength: 6 }), async (scripts) => {
      await Promise.all(scripts.map((ops) => runFlow(lb, backends, ops)));
      flows += scripts.length;
    }),
    { numRuns: Math.max(1, Math.floor(runs / 4)), endOnFailure: process.env.LB4_FLOW_MODEL_SHRINK !== '1' },
  );
  t.comment(`fuzz cases: ${flows}`);
  await until(() => lb.stats().listeners[0]!.counters.flows_active === 0, SETTLE_MS, 'every flow to leave the flow table');
  t.equal(lb.stats().listeners[0]!.counters.flows_total, flows, `all ${flows} flows counted, none left active`);
});
