// What the control plane sends the engine when backends change: one listener's table at a
// time (only the listeners whose backends changed), each backend with its cross-node identity.
// A real engine on loopback, port 0; no backend is ever connected to.

import t from 'tap';
import { startWithHooks } from '../../lib/internal.js';
import { createEngine } from '../../lib/engine/addon.js';
import { NativeBackendState, type NativeBackend, type NativeEngine, type NativeEngineOptions } from '../../lib/engine/native-types.js';

interface Sent {
  slot: number;
  backends: NativeBackend[];
  algorithm: number | undefined;
}

function recordingEngine(sent: Sent[]): (options: NativeEngineOptions) => NativeEngine {
  return (options) => {
    const engine = createEngine(options);
    // The addon's methods are read-only: a proxy stands in front, every call on the real engine.
    return new Proxy(engine, {
      get(target, property) {
        if (property === 'applyBackends') {
          return (slot: number, backends: NativeBackend[], algorithm?: number) => {
            sent.push({ slot, backends, algorithm });
            return target.applyBackends(slot, backends, algorithm);
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
}

t.test('a change to one listener sends only its table, with stable backend ids', async (t) => {
  const sent: Sent[] = [];
  const lb = await startWithHooks(
    {
      listeners: [
        { name: 'web', listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', { address: '127.0.0.1:9002', id: 'b' }] },
        { name: 'api', listen: '127.0.0.1:0', algorithm: 'leastconn', backends: ['127.0.0.1:9003', { address: '127.0.0.1:9004', id: 'x' }] },
      ],
      workers: 1,
    },
    { createEngine: recordingEngine(sent) },
  );
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  t.same(sent, [], 'start() carries the first tables');

  await lb.setBackendState('x', 'draining', { listener: 'api' });
  t.equal(sent.length, 1, 'one table sent');
  t.equal(sent[0].slot, 1, "api's slot");
  t.equal(sent[0].algorithm, 1, 'with its algorithm (leastconn)');
  t.same(
    sent[0].backends.map((b) => [b.id, b.state]),
    [
      ['api/127.0.0.1:9003', NativeBackendState.up],
      ['api/x', NativeBackendState.draining],
    ],
    'ids are "<listener>/<backend id or address as written>"',
  );

  sent.length = 0;
  await lb.setBackendState('127.0.0.1:9001', 'maintenance', { listener: 'web' });
  t.same(sent.map((s) => s.slot), [0], 'only web');
  t.same(sent[0].backends.map((b) => b.id), ['web/127.0.0.1:9001', 'web/b']);

  sent.length = 0;
  await lb.setBackendState('127.0.0.1:9001', 'maintenance', { listener: 'web' });
  t.same(sent, [], 'nothing changed: nothing sent');
});
