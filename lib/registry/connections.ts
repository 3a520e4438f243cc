// `connections()`: the engine's snapshot of open flows, with slots and backend keys turned back
// into the listener and backend names people use.

import type { NativeEngine } from '../engine/native-types.js';
import { Lb4Error } from '../errors.js';
import type { Connection, ConnectionFilter } from '../types.js';
import type { ListenerTable } from './listeners.js';
import type { BackendRegistry } from './registry.js';

export async function listConnections(engine: NativeEngine, registry: BackendRegistry, listeners: ListenerTable, filter: ConnectionFilter): Promise<Connection[]> {
  const limit = filter.limit ?? 1000;
  const listener = filter.listener === undefined ? undefined : listeners.require(filter.listener).slot;
  let backendKey: number | undefined;
  if (filter.backend !== undefined) {
    const found = registry.find(filter.backend, listener);
    if (found.length > 1) throw new Lb4Error('LB4_INVALID_OPTION', `backend "${filter.backend}" is in several listeners: name one`, { field: 'listener' });
    backendKey = found[0].key;
  }
  const slotNames = new Map(listeners.all().map((s) => [s.slot, s.config.name]));
  const flows = await engine.connections({ listener, backendKey, limit });
  return flows.slice(0, limit).map((f) => {
    const backend = f.backendKey !== undefined ? registry.byKey(f.backendKey) : undefined;
    return Object.freeze({
      id: f.id,
      protocol: f.protocol,
      listener: slotNames.get(f.listener) ?? String(f.listener),
      worker: f.worker,
      state: f.state,
      client: f.client,
      ...(backend ? { backend: backend.id, backendAddress: f.backend } : {}),
      startedAt: new Date(f.startedAt),
      bytesToBackend: f.bytesToBackend,
      bytesToClient: f.bytesToClient,
      ...(f.protocol === 'udp' ? { datagramsToBackend: f.datagramsToBackend ?? 0, datagramsToClient: f.datagramsToClient ?? 0 } : {}),
      ...(f.forward ? { forward: f.forward } : {}),
    });
  });
}
